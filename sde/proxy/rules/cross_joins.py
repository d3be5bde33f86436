"""Rule ``limits.cross-join``: few joins without an equality between their sides.

A join whose condition has no equality between a column of each side (a comma
join, ``CROSS JOIN``, ``ON TRUE``, ``ON a.x < b.y``) multiplies row counts; more
than ``limits.max_cross_joins`` of them in one query are refused. The equality
must hold for every joined row: one of the conjuncts (``AND``) of the condition,
not a branch of an ``OR`` (``ON a.x = b.x OR TRUE`` is a cross join). A join to
one row without tables (``VALUES (1)``, ``(SELECT 1 AS k)``: a parameter list) is
free; a join to many rows of ``VALUES`` multiplies like any other.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.resolve import conjuncts


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Count unconstrained joins; refuse beyond the limit."""
    count = 0
    for join in expression.find_all(exp.Join):
        if _constrained(join) or _one_row(join.this):
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
    for eq in conjuncts(join.args.get("on")):
        if not isinstance(eq, exp.EQ | exp.NullSafeEQ):
            continue
        left, right = eq.left, eq.right
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        if left.table and right.table and left.table != right.table:
            return True
    return False


def _one_row(node: exp.Expr) -> bool:
    """True for a join source of at most one row that reads no table."""
    if node.find(exp.Table) is not None:
        return False
    values = node.find(exp.Values)
    if values is not None:
        return len(values.expressions) <= 1 and node.find(exp.SetOperation) is None
    return node.find(exp.SetOperation) is None
