"""Rule ``limits.*`` (shape): size and depth of the tree; no recursive CTEs.

Resource limits that are about the query text; the row cap and the statement
timeout are applied later (:mod:`sde.proxy.rules.row_cap`, the barrier).
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Refuse very large or deeply nested queries and WITH RECURSIVE."""
    for count, node in enumerate(expression.walk(), start=1):
        if count > ctx.limits.max_nodes:
            raise ScopeViolation(
                "limits.query-size",
                f"the query has more than {ctx.limits.max_nodes} parts; simplify it",
            )
        if node.depth > ctx.limits.max_depth:
            raise ScopeViolation(
                "limits.depth", f"the query is nested more than {ctx.limits.max_depth} deep"
            )
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise ScopeViolation(
                "limits.recursive-cte",
                "WITH RECURSIVE is not allowed (it can run without bound)",
            )
    return expression
