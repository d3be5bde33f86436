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
:data:`MAX_CONSTANT_ROWS`, but only as long as the calendar is joined to a table by an
equality involving a column of that table (``ON EXTRACT(YEAR FROM c.start) = y.y``). A
calendar joined to a table without one multiplies every row of the table by the whole
calendar, so its free cross joins count as well: ``person p CROSS JOIN c CROSS JOIN c``
with a 100,000-row calendar ``c`` is 10^10 rows per person, a timeout exactly when a
WHERE aimed at one person finds them. An equality between two constant columns
(``ON b.one = a.one``) constrains nothing and is no join condition. Whatever the join
conditions, the constant rows joined to tables in one query multiply to at most
:data:`MAX_CONSTANT_ROWS` (``ON c.x = p.race_concept_id`` with every ``c.x`` equal
repeats each person once per calendar row).
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
    factors: dict[int, tuple[bool, int]] = {}
    for select in expression.find_all(exp.Select):
        _factor(select, factors)
    count = 0
    for join in expression.find_all(exp.Join):
        if _one_row(join.this) or _among_constants(join):
            continue
        count += _free_constant_joins(join)
        if not _constrained(join):
            count += 1
        if count > ctx.limits.max_cross_joins:
            raise ScopeViolation(
                "limits.cross-join",
                f"the query has more than {ctx.limits.max_cross_joins} joins without an "
                "equality between their sides (cross joins); add join conditions",
                limit=ctx.limits.max_cross_joins,
            )
    return expression


def _factor(node: exp.Expr, seen: dict[int, tuple[bool, int]]) -> tuple[bool, int]:
    """Whether ``node`` reads a table, and at most how many times constant sources repeat
    each of its rows: the product of the constant rows it joins, through derived tables
    and CTEs (a CTE joined to itself counts twice). Refuses a query reading tables whose
    factor exceeds :data:`MAX_CONSTANT_ROWS`, whatever the join conditions: ``ON c.x =
    p.race_concept_id`` with every ``c.x`` equal repeats each person once per row of ``c``.
    """
    key = id(node)
    if key in seen:
        return seen[key]
    seen[key] = (False, 1)  # a self-reference (refused elsewhere) adds nothing
    out = _factor_of(node, seen)
    seen[key] = out
    if out[0] and out[1] > MAX_CONSTANT_ROWS:
        raise ScopeViolation(
            "limits.cross-join",
            f"the query repeats rows of tables more than {MAX_CONSTANT_ROWS} times by joining "
            "them to constants (VALUES, constant CTEs); join fewer or smaller constant lists",
            limit=MAX_CONSTANT_ROWS,
        )
    return out


def _factor_of(  # noqa: PLR0911 - one return per kind
    node: exp.Expr, seen: dict[int, tuple[bool, int]]
) -> tuple[bool, int]:
    if isinstance(node, exp.Table):
        cte = visible_cte(node)
        return _factor(cte.this, seen) if cte is not None else (True, 1)
    if isinstance(node, exp.Subquery):
        return _factor(node.this, seen)
    if isinstance(node, exp.Values):
        return False, len(node.expressions)
    if isinstance(node, exp.Union):
        (ldata, left), (rdata, right) = _factor(node.left, seen), _factor(node.right, seen)
        return ldata or rdata, max(left, right) if ldata or rdata else left + right
    if isinstance(node, exp.Except | exp.Intersect):
        return _factor(node.left, seen)
    if isinstance(node, exp.Select):
        from_ = node.args.get("from_")
        sources = [from_.this] if from_ is not None else []
        sources += [j.this for j in node.args.get("joins") or []]
        data, total = False, 1
        for source in sources:
            reads, rows = _factor(source, seen)
            data = data or reads
            total *= rows
        return data, total
    return False, 1


def _constrained(join: exp.Join) -> bool:
    """An equality between a column of each side, not both of constant sources."""
    if join.args.get("using"):
        return not _all_constant(_sources(join))
    constants = _constant_aliases(join)
    for eq in conjuncts(join.args.get("on")):
        if not isinstance(eq, exp.EQ | exp.NullSafeEQ):
            continue
        left, right = eq.left, eq.right
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
            continue
        tables = {left.table, right.table}
        if left.table and right.table and len(tables) == 2 and not tables <= constants:
            return True
    return False


def _free_constant_joins(join: exp.Join) -> int:
    """The free joins among constants that ``join`` multiplies a table's rows by.

    ``join`` is a join with a table on one side (not among constants). Its constant side,
    the joined source if constant or else the constant sources before it (when all of them
    are), is free only when an equality in the ON ties it to a column of a table; without
    one, the joins that built it count: those in the constant sources' definitions, and
    for the sources before ``join`` the joins between them.
    """
    constant = _constant_side(join)
    if not constant:
        return 0
    if _tied_to_data(join, {s.alias_or_name for s in constant}):
        return 0
    inner = sum(_constant_joins(s) for s in constant)
    return inner + (len(constant) - 1 - sum(_one_row(s) for s in constant[1:]))


def _constant_side(join: exp.Join) -> list[exp.Expr]:
    """The constant sources ``join`` (not among constants) joins to a table: the joined
    source if constant, else the sources before it when all of them are constant."""
    sources = _sources(join)
    joined, before = sources[-1], sources[:-1]
    if constant_rows(joined) is not None:
        return [joined]
    if before and _all_constant(before):
        return before
    return []


def _tied_to_data(join: exp.Join, constants: set[str]) -> bool:
    """An ON equality with a constant source's column on one side and only columns of
    tables (not constant sources) of this join on the other."""
    aliases = {s.alias_or_name for s in _sources(join)}
    for eq in conjuncts(join.args.get("on")):
        if not isinstance(eq, exp.EQ | exp.NullSafeEQ):
            continue
        sides = [{c.table for c in _columns(side)} for side in (eq.left, eq.right)]
        for mine, theirs in (sides, sides[::-1]):
            if (
                mine
                and mine <= constants
                and theirs
                and "" not in theirs
                and theirs <= aliases - constants
            ):
                return True
    return False


def _columns(node: exp.Expr) -> list[exp.Column]:
    return [node] if isinstance(node, exp.Column) else list(node.find_all(exp.Column))


def _constant_joins(node: exp.Expr) -> int:
    """How many joins of more than one row the constant source ``node`` is built with."""
    if isinstance(node, exp.Table):
        cte = visible_cte(node)
        return _constant_joins(cte.this) if cte is not None else 0
    total = 0
    for select in node.find_all(exp.Select):
        from_ = select.args.get("from_")
        joins = select.args.get("joins") or []
        for source in [from_.this] if from_ is not None else []:
            total += _constant_joins(source) if isinstance(source, exp.Table) else 0
        for join in joins:
            total += _constant_joins(join.this) if isinstance(join.this, exp.Table) else 0
            total += 0 if _one_row(join.this) else 1
    return total


def _sources(join: exp.Join) -> list[exp.Expr]:
    """The sources of ``join``'s SELECT up to and including ``join``'s."""
    select = join.parent
    if not isinstance(select, exp.Select):
        return [join.this]
    from_ = select.args.get("from_")
    sources = [from_.this] if from_ is not None else []
    for other in select.args.get("joins") or []:
        sources.append(other.this)
        if other is join:
            break
    return sources


def _constant_aliases(join: exp.Join) -> set[str]:
    return {s.alias_or_name for s in _sources(join) if constant_rows(s) is not None}


def _all_constant(sources: list[exp.Expr]) -> bool:
    return all(constant_rows(s) is not None for s in sources)


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
