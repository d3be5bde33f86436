"""Rule ``aggregates.threshold``: small groups are removed inside the query.

In ``aggregates`` mode, :mod:`sde.proxy.rules.aggregates` adds a hidden person count
per person-level source of the outermost query. This rule moves the query's grouping
into a derived table whose ``HAVING`` keeps only groups with at least ``threshold``
persons for every count, and lets everything else the researcher wrote run *over the
surviving groups only*::

    SELECT <outputs>                        -- the researcher's expressions
    FROM (SELECT <group keys>, <aggregates>, <person counts>
          FROM ... WHERE ... GROUP BY ...
          HAVING <every person count> >= threshold) AS "__sde_groups"
    WHERE CASE WHEN <counts> >= threshold THEN <the researcher's HAVING> ELSE FALSE END
    QUALIFY ... ORDER BY ... LIMIT ... OFFSET ...

So a group under the threshold never reaches the researcher's HAVING, output
expressions, DISTINCT, window functions, ORDER BY, LIMIT, OFFSET or the row cap:
which rows come back, how many, their values and whether the query fails do not
depend on it. The derived table computes only group keys and aggregates; the
researcher's expressions over them (a division that fails on a small count, say)
are evaluated on surviving groups only. The ``CASE`` guard keeps that true if an
engine merges the outer filter into the inner ``HAVING``.

Nothing says how many groups were removed: that number is a function of the
suppressed groups' contents (``HAVING COUNT(*) = k`` for k = 1..9 would read a
group's size from it).
"""

from __future__ import annotations

from sqlglot import exp

from sde.errors import ScopeViolation
from sde.proxy.context import RuleContext
from sde.proxy.rules.aggregates import HIDDEN_PREFIX

#: Alias of the derived table holding the surviving groups.
GROUPS = "__sde_groups"

#: Select arguments the derived table keeps (the grouping itself).
_INNER = ("from_", "joins", "laterals", "where", "group")
#: Select arguments the outer query takes over (all run on surviving groups).
_OUTER = ("having", "qualify", "order", "limit", "offset", "distinct", "windows", "with_")


def rewrite(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Wrap an aggregates-mode query so that suppression precedes everything else."""
    if ctx.scope.access != "aggregates" or not ctx.enforce_access or ctx.node_part:
        return expression  # a node part's small groups are flagged by the node instead
    if not isinstance(expression, exp.Select):
        return expression  # aggregates.shape refused set operations already
    counts = [p for p in expression.expressions if p.alias_or_name.startswith(HIDDEN_PREFIX)]
    if not counts:
        return expression  # no person-level source: nothing is counted, nothing suppressed
    _check_args(expression, ctx)
    outputs = [p for p in expression.expressions if not any(p is c for c in counts)]
    lifted = _Lifted(expression, outputs, counts)
    inner = exp.Select(expressions=lifted.inner_outputs())
    for arg in _INNER:
        if expression.args.get(arg):
            inner.set(arg, expression.args[arg])
    inner.set("having", exp.Having(this=lifted.enough(ctx.scope.threshold)))
    outer = exp.Select(expressions=[lifted.output(p) for p in outputs])
    outer.set("from_", exp.From(this=inner.subquery(GROUPS, copy=False)))
    _carry_over(expression, outer, lifted, ctx.scope.threshold)
    return outer


def is_thresholded(expression: exp.Expression) -> bool:
    """True when ``expression`` is a query this rule wrapped."""
    if not isinstance(expression, exp.Select):
        return False
    source = expression.args.get("from_")
    return (
        source is not None
        and isinstance(source.this, exp.Subquery)
        and source.this.alias_or_name == GROUPS
    )


def _check_args(select: exp.Select, ctx: RuleContext) -> None:
    group = select.args.get("group")
    if group is not None and any(k for k, v in group.args.items() if k != "expressions" and v):
        raise _shape(ctx, "GROUP BY ALL, ROLLUP, CUBE or GROUPING SETS")
    known = {*_INNER, *_OUTER, "expressions"}
    for arg, value in select.args.items():
        if value and arg not in known:
            raise _shape(ctx, f"the {arg.upper()} clause")


def _carry_over(source: exp.Select, outer: exp.Select, lifted: _Lifted, threshold: int) -> None:
    """Move HAVING (as a guarded WHERE), QUALIFY, ORDER BY, LIMIT... onto the outer query."""
    having = source.args.get("having")
    if having is not None:
        guard = exp.If(this=lifted.enough(threshold, outer=True), true=lifted.lift(having.this))
        outer.set("where", exp.Where(this=exp.Case(ifs=[guard], default=exp.false())))
    qualify = source.args.get("qualify")
    if qualify is not None:
        guard = exp.If(this=lifted.enough(threshold, outer=True), true=lifted.lift(qualify.this))
        outer.set("qualify", exp.Qualify(this=exp.Case(ifs=[guard], default=exp.false())))
    for arg in ("order", "distinct", "windows"):
        value = source.args.get(arg)
        if value:
            lifted_value = (
                [lifted.lift(v) for v in value] if isinstance(value, list) else lifted.lift(value)
            )
            outer.set(arg, lifted_value)
    for arg in ("limit", "offset", "with_"):
        if source.args.get(arg):
            outer.set(arg, source.args[arg])


def _shape(ctx: RuleContext, what: str) -> ScopeViolation:
    return ScopeViolation(
        "aggregates.shape",
        f"project {ctx.project} receives grouped aggregates only; {what} is not allowed",
    )


class _Lifted:
    """The group keys, aggregates and person counts computed in the derived table, and
    how the researcher's expressions read them from it."""

    def __init__(
        self, select: exp.Select, outputs: list[exp.Expression], counts: list[exp.Expression]
    ) -> None:
        group = select.args.get("group")
        self.keys = [k.copy() for k in (group.expressions if group else [])]
        self.aggregates: list[exp.Expression] = []
        for part in [*outputs, *(select.args.get(a) for a in _OUTER)]:
            for node in _parts(part):
                for unit in _own_aggregates(node, select):
                    if not any(unit == a for a in self.aggregates):
                        self.aggregates.append(unit.copy())
        self.counts = [c.unalias().copy() for c in counts]

    def inner_outputs(self) -> list[exp.Expr]:
        named = [
            *((k, f"__sde_k{i}") for i, k in enumerate(self.keys)),
            *((a, f"__sde_a{i}") for i, a in enumerate(self.aggregates)),
            *((c, f"__sde_n{i}") for i, c in enumerate(self.counts)),
        ]
        return [exp.alias_(value.copy(), name, quoted=True) for value, name in named]

    def enough(self, threshold: int, *, outer: bool = False) -> exp.Expr:
        """Every person count at least ``threshold`` (in the derived table, or read from it)."""
        tests = [
            exp.GTE(
                this=_column(f"__sde_n{i}") if outer else count.copy(),
                expression=exp.Literal.number(threshold),
            )
            for i, count in enumerate(self.counts)
        ]
        return exp.and_(*tests)

    def output(self, projection: exp.Expression) -> exp.Expr:
        return exp.alias_(self.lift(projection.unalias()), projection.alias_or_name, quoted=True)

    def lift(self, node: exp.Expr) -> exp.Expr:
        """``node`` reading group keys and aggregates from the derived table."""
        return node.transform(self._swap)

    def _swap(self, node: exp.Expr) -> exp.Expr:
        nested = _enclosing_selects(node)
        if not nested and _is_unit(node):
            for i, agg in enumerate(self.aggregates):
                if node == agg:
                    return _column(f"__sde_a{i}")
        if nested and (not isinstance(node, exp.Column) or _shadowed(node, nested)):
            return node  # a subquery's own expression; only correlated key columns lift
        for i, key in enumerate(self.keys):
            if node == key:
                return _column(f"__sde_k{i}")
        return node


def _column(name: str) -> exp.Column:
    return exp.column(name, table=GROUPS, quoted=True)


def _parts(part: exp.Expression | list[exp.Expression] | None) -> list[exp.Expression]:
    if part is None:
        return []
    return list(part) if isinstance(part, list) else [part]


def _is_unit(node: exp.Expr) -> bool:
    """An aggregate of the outermost query as a whole: ``COUNT(*) FILTER (WHERE ...)`` and
    ``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)`` with their clause; not the function
    a window runs (``SUM(COUNT(*)) OVER ()``: the unit is the ``COUNT(*)``)."""
    parent = node.parent
    if isinstance(parent, exp.Window) and node.arg_key == "this":
        return False
    if isinstance(node, exp.Filter | exp.WithinGroup):
        return isinstance(node.this, exp.AggFunc)
    if not isinstance(node, exp.AggFunc):
        return False
    return not (isinstance(parent, exp.Filter | exp.WithinGroup) and node.arg_key == "this")


def _own_aggregates(part: exp.Expression, top: exp.Select) -> list[exp.Expression]:
    """The aggregate units of ``part`` that belong to ``top`` itself (not to a subquery)."""
    out: list[exp.Expression] = []
    for node in part.dfs(prune=lambda n: isinstance(n, exp.Query) or _is_unit(n)):
        if (
            isinstance(node, exp.Expression)
            and _is_unit(node)
            and not _enclosing_selects(node, top)
        ):
            out.append(node)
    return out


def _enclosing_selects(node: exp.Expr, top: exp.Expr | None = None) -> list[exp.Select]:
    """Queries between ``node`` and ``top`` (or the root of the expression being lifted)."""
    out = []
    parent = node.parent
    while parent is not None and parent is not top:
        if isinstance(parent, exp.Select):
            out.append(parent)
        parent = parent.parent
    return out


def _shadowed(column: exp.Column, selects: list[exp.Select]) -> bool:
    """True when a nested query names a source like the column's table (its own column)."""
    if not column.table:
        return True
    for select in selects:
        sources = [select.args.get("from_"), *(select.args.get("joins") or [])]
        for source in sources:
            if source is not None and source.this.alias_or_name == column.table:
                return True
    return False
