"""Rule ``limits.limit``: literal LIMIT/OFFSET, and at most ``row_cap`` rows.

LIMIT and OFFSET must be whole-number literals (else ``limits.limit``). The
outermost query then gets ``LIMIT row_cap + 1`` (or keeps a smaller literal
LIMIT of its own); the connection cuts the extra row and reports the cut, so a
researcher always knows when a result is incomplete. The cut itself is not a
refusal and has no rule id of its own.

The DP engine's exact-total queries (``enforce_access=False``) are not capped: the
researcher never sees them, the release is bounded by its keys, and a cut would
silently drop totals.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext


def rewrite(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Inject the row cap on the outermost query."""
    for node in expression.find_all(exp.Limit, exp.Offset):
        value = node.expression
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise ScopeViolation(
                "limits.limit",
                f"{node.key.upper()} must be a whole number written in the query",
            )
    if not isinstance(expression, exp.Query) or not ctx.enforce_access:
        return expression  # statement.read-only refused anything else; DP exact runs
    cap = ctx.limits.row_cap + 1
    limit = expression.args.get("limit")
    if isinstance(limit, exp.Limit) and int(limit.expression.this) <= cap:
        return expression
    distinct = expression.args.get("distinct")
    if isinstance(expression, exp.Select) and not (distinct and distinct.args.get("on")):
        return expression.limit(cap, copy=False)
    # Set operations, and DISTINCT ON (Spark runs it as a window in a subquery, which
    # would cut rows before the distinct): the cap goes on the outside.
    wrapped = exp.select("*").from_(expression.subquery("sde_result"))
    return wrapped.limit(cap, copy=False)
