"""Rule ``functions.*``: only functions and types safe for analysis.

Every function must be on :data:`sde.proxy.allowlists.FUNCTIONS`: no file or
network access, no catalog or session functions, no sleeping, no random
numbers (seeded or not), no user-defined functions. Casts may only name plain
types (:data:`sde.proxy.allowlists.TYPES`), so ``::regclass`` and friends are
out.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.allowlists import FUNCTIONS, SYNTAX, TYPES, function_name
from sde.proxy.context import RuleContext
from sde.proxy.resolve import is_hint


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Refuse any function or type that is not allowlisted."""
    for node in expression.walk(prune=is_hint):
        if isinstance(node, exp.Func) and type(node) not in FUNCTIONS | SYNTAX:
            name = function_name(node)
            raise ScopeViolation(
                "functions.not-allowed",
                f"function {name} is not available to project {ctx.project}",
                name=name,
            )
        if isinstance(node, exp.DataType) and node.this not in TYPES:
            name = node.sql(ctx.dialect)
            raise ScopeViolation(
                "functions.type-not-allowed",
                f"type {name} is not available to project {ctx.project}",
                name=name,
            )
    return expression
