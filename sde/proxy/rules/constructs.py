"""Rule ``syntax.unsupported``: only syntax the proxy knows to be safe.

Every node of the tree must be a syntax node of
:data:`sde.proxy.allowlists.SYNTAX` or a function (functions have their own
rule). This refuses, by default, constructs such as DuckDB's ``COLUMNS()``,
struct and ``->`` access, ``PIVOT``, ``TABLESAMPLE``, parameters, optimizer
hints, ``COLLATE`` and object identifiers (``::regclass``); and bare words other
than date parts (:data:`sde.proxy.allowlists.DATE_PARTS`), which the engine would
read as written.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.allowlists import DATE_PARTS, SYNTAX
from sde.proxy.context import RuleContext


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Refuse any node that is neither allowlisted syntax nor a function."""
    for node in expression.walk():
        if (
            isinstance(node, exp.Func)
            and not isinstance(node, exp.Columns)
            and type(node) not in SYNTAX
        ):
            continue
        if type(node) not in SYNTAX:
            name = _name(node)
            raise ScopeViolation(
                "syntax.unsupported",
                f"{name} is not allowed in queries of project {ctx.project}",
                construct=name,
            )
        if (
            isinstance(node, exp.Var)
            and node.name.upper() not in DATE_PARTS
            and not isinstance(node.parent, exp.Limit | exp.Offset)  # LIMIT ALL: the row cap rule
        ):
            word = node.name or "(none)"
            raise ScopeViolation(
                "syntax.unsupported",
                f"the bare word {word} is not allowed here; only date parts such as "
                "YEAR, MONTH or DAY may be written without quotes",
                construct=word,
            )
        if isinstance(node, exp.Join) and node.args.get("method"):
            method = str(node.args["method"]).upper()
            raise ScopeViolation(
                "syntax.unsupported",
                f"{method} JOIN is not allowed; name the join columns with ON",
                construct=f"{method} JOIN",
            )
    return expression


def _name(node: exp.Expr) -> str:
    if isinstance(node, exp.Columns):
        return "COLUMNS(...)"
    if isinstance(node, exp.Hint):
        return "an optimizer hint /*+ ... */"
    return node.key.upper()
