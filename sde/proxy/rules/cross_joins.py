"""Rule ``limits.cross-join``: few joins without an equality between their sides.

A join whose condition has no equality between a column of each side (a comma
join, ``CROSS JOIN``, ``ON TRUE``, ``ON a.x < b.y``) multiplies row counts; more
than ``limits.max_cross_joins`` of them in one query are refused. A join to
``VALUES`` or to a subquery without tables (a one-row parameter list) is free.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Count unconstrained joins; refuse beyond the limit."""
    count = 0
    for join in expression.find_all(exp.Join):
        if _constrained(join) or not _reads_tables(join.this):
            continue
        count += 1
        if count > ctx.limits.max_cross_joins:
            raise ScopeViolation(
                "limits.cross-join",
                f"the query has more than {ctx.limits.max_cross_joins} joins without an "
                "equality between their sides (cross joins); add join conditions",
                limit=ctx.limits.max_cross_joins,
            )
    return expression


def _constrained(join: exp.Join) -> bool:
    if join.args.get("using"):
        return True
    on = join.args.get("on")
    if on is None:
        return False
    for eq in on.find_all(exp.EQ, exp.NullSafeEQ):
        left, right = eq.left, eq.right
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        if left.table and right.table and left.table != right.table:
            return True
    return False


def _reads_tables(node: exp.Expression) -> bool:
    return node.find(exp.Table) is not None
