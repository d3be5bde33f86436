"""Rule ``limits.cross-join``: few joins without an equality between their sides.

A join whose condition has no equality between a column of each side (a comma
join, ``CROSS JOIN``, ``ON TRUE``, ``ON a.x < b.y``) multiplies row counts; more
than ``limits.max_cross_joins`` of them in one query are refused. The equality
must hold for every joined row: one of the conjuncts (``AND``) of the condition,
not a branch of an ``OR`` (``ON a.x = b.x OR TRUE`` is a cross join). A join to
one row without tables (``VALUES (1)``, ``(SELECT 1 AS k)``: a parameter list) is
free; a join to many rows of ``VALUES`` multiplies a table's rows like any other.

Constants hold no data: cross joins *among* constant sources (``VALUES``, table-free
SELECTs and UNIONs of them, CTEs of those: a calendar of years x months x days, as
OHDSI's analysis SQL builds) are free while the joined constants stay within
:data:`MAX_CONSTANT_ROWS`; joining the result to a table is counted as usual.
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.resolve import conjuncts, visible_cte

#: Rows a cross product of constant sources may reach and still be free.
MAX_CONSTANT_ROWS = 100_000


def check(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Count unconstrained joins; refuse beyond the limit."""
    count = 0
    for join in expression.find_all(exp.Join):
        if _constrained(join) or _one_row(join.this) or _among_constants(join):
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


def _among_constants(join: exp.Join) -> bool:
    """True when ``join`` and every source before it in its FROM are constants whose
    product stays within :data:`MAX_CONSTANT_ROWS`."""
    select = join.parent
    if not isinstance(select, exp.Select) or select.args.get("from_") is None:
        return False
    sources = [select.args["from_"].this]
    for other in select.args.get("joins") or []:
        sources.append(other.this)
        if other is join:
            break
    total = 1
    for source in sources:
        rows = constant_rows(source)
        if rows is None:
            return False
        total *= rows
        if total > MAX_CONSTANT_ROWS:
            return False
    return True


def constant_rows(node: exp.Expr) -> int | None:  # noqa: PLR0911 - one return per kind
    """At most how many rows ``node`` yields if it reads no table; ``None`` if it reads
    one (a CTE is followed to its body) or its size is not evident."""
    if isinstance(node, exp.Table):
        cte = visible_cte(node)
        return constant_rows(cte.this) if cte is not None else None
    if isinstance(node, exp.Subquery):
        return constant_rows(node.this)
    if isinstance(node, exp.Values):
        return len(node.expressions)
    if isinstance(node, exp.Union):
        left, right = constant_rows(node.left), constant_rows(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, exp.Except | exp.Intersect):
        return constant_rows(node.left)
    if isinstance(node, exp.Select):
        if node.find(exp.Table) is not None and not _tables_are_constant(node):
            return None
        if node.args.get("from_") is None:
            return None if node.args.get("joins") else 1
        total = constant_rows(node.args["from_"].this)
        for join in node.args.get("joins") or []:
            rows = constant_rows(join.this)
            total = None if total is None or rows is None else total * rows
        return total
    return None


def _tables_are_constant(node: exp.Expr) -> bool:
    return all(
        visible_cte(t) is not None and constant_rows(t) is not None
        for t in node.find_all(exp.Table)
    )
