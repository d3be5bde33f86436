"""Rule ``aggregates.*``: in ``aggregates`` mode, only grouped aggregate results.

The outermost query must be one SELECT whose outputs are GROUP BY keys or
aggregates of a safe kind (counts, sums, means, spreads, quantiles away from the
extremes: no MIN, MAX, lists or first values, which return one person's own
value). To count the persons behind each group, every person-level source of the
outer query (a table with ``person_id``, or a subquery/CTE passing ``person_id``
straight through from one) gets a hidden ``COUNT(DISTINCT person_id)`` output; the
connection drops groups under the project's threshold for *any* source and
reports them.

The count only means something if every person whose data shapes a group is
among the persons counted. So below the outermost query, person-level data may
only flow **one person at a time** (``aggregates.cross-person``):

- a derived table or CTE that reads person-level data passes ``person_id``
  through from its sources (else ``aggregates.no-person``), ties all its
  person-level sources together by ``person_id`` equality, and aggregates or
  runs window functions only per person (``GROUP BY``/``PARTITION BY``
  ``person_id``), so ``MAX(x) OVER ()`` or an inner ``MIN`` cannot smuggle one
  person's value into everybody's row. The key must be the bare column
  ``t.person_id`` of a local person source: ``PARTITION BY t.person_id IS NOT NULL``
  is one partition for everybody. ``DISTINCT ON (...)`` keeps one row per key (the
  first person's), so it needs a bare ``person_id`` key as well; ``LIMIT``,
  ``OFFSET``, ``FETCH`` and ``TOP`` keep the top rows across persons and are refused
  unless the subquery is correlated on the outer person;
- a subquery in an expression (``IN``, ``EXISTS``, a scalar subquery) that reads
  person-level data is tied to a counted person: ``p.person_id IN (SELECT
  t.person_id ...)``, or correlated with ``t.person_id = p.person_id``
  (``aggregates.unbound``); the same holds for the right side of a SEMI/ANTI join.

Which tables are person-level and which sources are joined on ``person_id`` are the
facts of :mod:`sde.proxy.persons`, shared with DP's locality check.

Not a formal guarantee: thresholds do not stop differencing between queries or
predicates aimed at one person inside a group; projects needing that use ``dp``.
"""

from __future__ import annotations

import itertools

from sqlglot import exp
from sqlglot.optimizer.scope import Scope as QueryScope
from sqlglot.optimizer.scope import build_scope

from sde.errors import ScopeViolation
from sde.proxy.allowlists import SAFE_AGGREGATES, function_name
from sde.proxy.context import RuleContext
from sde.proxy.persons import OUTER, PID, PersonLinks, person_column

#: Prefix of the hidden person-count outputs the connection reads and drops.
HIDDEN_PREFIX = "__sde_persons_"


def rewrite(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Check the shape and add the hidden person counts (aggregates mode only)."""
    if ctx.scope.access != "aggregates" or not ctx.enforce_access:
        return expression
    if not isinstance(expression, exp.Select):
        raise _shape(ctx, "a set operation (UNION, INTERSECT, EXCEPT) at the outermost level")
    group = expression.args.get("group")
    keys = list(group.expressions) if group else []
    for projection in expression.expressions:
        _check_output(projection, keys, ctx)
    parts = [
        *expression.expressions,
        *(expression.args.get(k) for k in ("having", "qualify", "order")),
    ]
    for part in parts:
        if part is None:
            continue
        for agg in part.find_all(exp.AggFunc):
            _check_aggregate(agg, ctx)
    scope = build_scope(expression)
    if scope is None:
        raise _shape(ctx, "a query the proxy cannot analyse")
    counted = _Flows(ctx).root(scope)
    for i, alias in enumerate(counted):
        count = exp.Count(
            this=exp.Distinct(expressions=[exp.column(PID, table=alias, quoted=True)])
        )
        expression.select(exp.alias_(count, f"{HIDDEN_PREFIX}{i}", quoted=True), copy=False)
    return expression


def _shape(ctx: RuleContext, what: str) -> ScopeViolation:
    return ScopeViolation(
        "aggregates.shape",
        f"project {ctx.project} receives grouped aggregates only; {what} is not allowed",
    )


# -- the outermost query's outputs ------------------------------------------------------


def _check_output(projection: exp.Expression, keys: list[exp.Expression], ctx: RuleContext) -> None:
    name = projection.alias_or_name
    if name.lower().startswith("__sde"):  # DuckDB output names ignore case
        raise ScopeViolation("aggregates.shape", f"output name {name} is reserved", name=name)
    value = projection.unalias()
    if value.find(exp.Window, exp.Subquery) is not None:
        raise _shape(ctx, f"output {name} (a window function or subquery)")
    if any(value == key for key in keys):
        return
    if value.find(exp.AggFunc) is None:
        raise ScopeViolation(
            "aggregates.not-aggregated",
            f"output {name} is neither a GROUP BY key nor an aggregate; project "
            f"{ctx.project} receives grouped aggregates only",
            name=name,
        )
    for column in value.find_all(exp.Column):
        if not _inside_aggregate(column, value) and not any(column == key for key in keys):
            raise ScopeViolation(
                "aggregates.not-aggregated",
                f"column {column.name} in output {name} is outside an aggregate",
                name=column.name,
            )


def _inside_aggregate(node: exp.Expr, top: exp.Expr) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.AggFunc | exp.WithinGroup | exp.Filter):
            return True  # WITHIN GROUP (ORDER BY x) and FILTER (WHERE ...) belong to it
        if parent is top:
            return False
        parent = parent.parent
    return False


def _check_aggregate(agg: exp.AggFunc, ctx: RuleContext) -> None:
    name = function_name(agg)
    if type(agg) not in SAFE_AGGREGATES:
        raise ScopeViolation(
            "aggregates.function",
            f"aggregate {name} can return one person's own value; project "
            f"{ctx.project} may only use counts, sums, means, spreads and quantiles",
            name=name,
        )
    level = _quantile_level(agg)
    if level is None:
        return
    low = 1 / max(ctx.scope.threshold, 4)
    value = _number(level)
    if value is None or not low < value < 1 - low:
        shown = level.sql(ctx.dialect)
        raise ScopeViolation(
            "aggregates.function",
            f"aggregate {name} at level {shown} can return a group's minimum or maximum, "
            f"one person's own value; project {ctx.project} may use levels strictly between "
            f"{low:g} and {1 - low:g} (written as a number)",
            name=name,
        )


def _quantile_level(agg: exp.AggFunc) -> exp.Expression | None:
    """The level of a percentile/quantile aggregate (``None`` for other aggregates)."""
    if isinstance(agg, exp.Quantile | exp.ApproxQuantile):
        level = agg.args.get("quantile")
    elif isinstance(agg, exp.PercentileCont | exp.PercentileDisc):
        # PostgreSQL: PERCENTILE_CONT(level) WITHIN GROUP (...); DuckDB: (x, level)
        level = agg.args.get("expression") if agg.args.get("expression") else agg.this
    else:
        return None
    return level if isinstance(level, exp.Expression) else exp.Null()


def _number(node: exp.Expression) -> float | None:
    if isinstance(node, exp.Neg):
        inner = _number(node.this)
        return -inner if inner is not None else None
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None


# -- where person-level data flows ------------------------------------------------------


class _Flows:
    """Checks that person-level data reaches the outermost query one person at a time."""

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self._reads: dict[int, bool] = {}
        self._person_sources: dict[int, dict[str, exp.Table | QueryScope]] = {}

    # The outermost query: its person-level sources are counted.
    def root(self, scope: QueryScope) -> list[str]:
        persons = self._persons(scope)
        semi = set(scope.semi_or_anti_join_tables)
        counted = [a for a in scope.selected_sources if a in persons and a not in semi]
        graph = self._links(scope)
        for alias in sorted(semi & set(persons)):
            if not any(graph.connected(alias, c) for c in counted):
                raise self._unbound(alias, "the right side of a SEMI or ANTI join")
        self._children(scope)
        return counted

    # A derived table, CTE or subquery below the outermost query.
    def nested(self, scope: QueryScope, anchor: str) -> None:
        """Check a scope below the outermost query.

        ``anchor`` is the local alias whose persons the scope hands on (the ``person_id``
        it passes through, or selects for ``IN``), or ``OUTER`` for a subquery that must
        be correlated with a person of an enclosing query.
        """
        persons = self._persons(scope)
        self._children(scope)
        if not persons:
            return
        graph = self._links(scope)
        if anchor == OUTER and not any(graph.connected(a, OUTER) for a in persons):
            raise self._unbound(next(iter(persons)), "a subquery")
        for alias in persons:
            if not graph.connected(alias, anchor):
                raise ScopeViolation(
                    "aggregates.cross-person",
                    f"source {alias} is not joined on person_id to the persons this part of "
                    f"the query hands on, so another person's data could reach them; project "
                    f"{self.ctx.project} receives aggregates of counted persons only (join it "
                    f"ON {alias}.person_id = ...)",
                    name=alias,
                )
        if graph.connected(anchor, OUTER):
            return  # correlated on person_id: each evaluation sees one person's rows
        self._per_person(scope, persons)

    def _per_person(self, scope: QueryScope, persons: dict[str, exp.Table | QueryScope]) -> None:
        """Aggregates and window functions of an uncorrelated scope stay within a person."""
        select = scope.expression
        for arg in ("limit", "offset"):
            if select.args.get(arg) is not None:
                raise _top_n(arg)
        distinct = select.args.get("distinct")
        on = distinct.args.get("on") if isinstance(distinct, exp.Distinct) else None
        if on is not None:
            keys = on.expressions if isinstance(on, exp.Tuple) else [on]
            if not _person_key(keys, persons):
                raise ScopeViolation(
                    "aggregates.cross-person",
                    "DISTINCT ON inside a subquery keeps, for each key, the row of the one "
                    "person that sorts first, so other persons' values decide which rows the "
                    "outer counts see; include person_id as a key (DISTINCT ON (t.person_id, "
                    "...)) or compute it in the outermost query",
                    name="DISTINCT ON",
                )
        group = select.args.get("group")
        aggregates = [a for a in scope.find_all(exp.AggFunc) if not a.find_ancestor(exp.Window)]
        keys = list(group.expressions) if group else []
        if (aggregates or group) and not _person_key(keys, persons):
            name = function_name(aggregates[0]) if aggregates else "GROUP BY"
            raise ScopeViolation(
                "aggregates.cross-person",
                f"{name} inside a subquery combines several persons' rows into one value "
                "that the outer counts do not cover; group it by person_id (one row per "
                "person: a bare person_id key, not an expression of it) or compute it in "
                "the outermost query",
                name=name,
            )
        for window in scope.find_all(exp.Window):
            partition = window.args.get("partition_by") or []
            if not _person_key(partition, persons):
                name = function_name(window.this) if isinstance(window.this, exp.Func) else "OVER"
                raise ScopeViolation(
                    "aggregates.cross-person",
                    f"window function {name} runs across persons, so one person's value can "
                    "reach another person's row; add PARTITION BY person_id (the bare "
                    "column, not an expression of it)",
                    name=name,
                )

    def _children(self, scope: QueryScope) -> None:
        for alias, source in scope.sources.items():
            if isinstance(source, QueryScope) and self.reads_persons(source):
                inner = _unwrap(source)
                handed_on = _person_alias(inner)
                if handed_on is None:
                    raise _no_person(alias)
                self.nested(inner, handed_on)
        for sub in scope.subquery_scopes:
            if self.reads_persons(sub):
                self._subquery(sub, scope)

    def _subquery(self, sub: QueryScope, outer: QueryScope) -> None:
        lhs = _in_left_side(sub.expression)
        bound_in = (
            isinstance(lhs, exp.Column)
            and lhs.name == PID
            and self._node(outer, lhs.table) is not None
        )
        branches = sub.set_operation_scopes if isinstance(sub.expression, exp.SetOperation) else []
        if branches and bound_in:
            for arg in ("limit", "offset"):
                if sub.expression.args.get(arg) is not None:
                    raise _top_n(arg)
        for branch in branches or [sub]:
            if isinstance(branch.expression, exp.SetOperation):
                self._subquery(branch, outer)
                continue
            if not bound_in:
                self.nested(branch, OUTER)  # each branch correlated on the outer person
                continue
            projected = _projected_person(branch)
            if projected is None:
                raise self._unbound("IN", "an IN (...) subquery that does not select person_id")
            self.nested(branch, projected)

    # -- helpers ------------------------------------------------------------------------

    def reads_persons(self, scope: QueryScope) -> bool:
        """True when ``scope`` (or anything below it) reads a person-level table."""
        scope = _unwrap(scope)
        key = id(scope)
        if key not in self._reads:
            found = any(
                (isinstance(s, exp.Table) and _is_person_table(s.name))
                or (isinstance(s, QueryScope) and self.reads_persons(s))
                for s in scope.sources.values()
            ) or any(
                self.reads_persons(s)
                for s in itertools.chain(
                    scope.subquery_scopes, scope.set_operation_scopes, scope.udtf_scopes
                )
            )
            self._reads[key] = found
        return self._reads[key]

    def _persons(self, scope: QueryScope) -> dict[str, exp.Table | QueryScope]:
        """Person-level sources of ``scope`` (SEMI/ANTI join right sides included)."""
        key = id(scope)
        if key not in self._person_sources:
            self._person_sources[key] = self._find_persons(scope)
        return self._person_sources[key]

    def _find_persons(self, scope: QueryScope) -> dict[str, exp.Table | QueryScope]:
        out: dict[str, exp.Table | QueryScope] = {}
        for alias, source in scope.sources.items():
            if isinstance(source, exp.Table):
                if _is_person_table(source.name):
                    out[alias] = source
            elif isinstance(source, QueryScope):
                if self.reads_persons(source):
                    if _person_alias(_unwrap(source)) is None:
                        raise _no_person(alias)
                    out[alias] = source
            else:
                raise _shape(self.ctx, f"source {alias}")
        return out

    def _links(self, scope: QueryScope) -> PersonLinks:
        """Which person sources of ``scope`` (and persons of enclosing queries) are joined
        on ``person_id``."""

        def node_of(column: exp.Column) -> str | None:
            return self._node(scope, column.table) if column.name == PID else None

        return PersonLinks(scope.expression, self._persons(scope), node_of)

    def _node(self, scope: QueryScope, alias: str) -> str | None:
        """Graph node of a ``person_id`` column qualified by ``alias`` as seen from ``scope``:
        the alias itself for a local person source, ``OUTER`` for a person source of an
        enclosing query, ``None`` for anything else."""
        if alias in scope.sources:
            return alias if alias in self._persons(scope) else None
        parent = scope.parent
        while parent is not None:
            if isinstance(parent.expression, exp.Lateral):
                parent = parent.parent  # the LATERAL wrapper: its sources are its parent's
                continue
            if alias in parent.sources:
                return OUTER if alias in self._persons(parent) else None
            parent = parent.parent
        return None

    def _unbound(self, alias: str, where: str) -> ScopeViolation:
        return ScopeViolation(
            "aggregates.unbound",
            f"{where} reads person-level data ({alias}) that is not tied to the persons "
            f"the outer query counts; project {self.ctx.project} may use such subqueries "
            "only per person: p.person_id IN (SELECT t.person_id ...) or "
            "EXISTS (SELECT ... WHERE t.person_id = p.person_id)",
            name=alias,
        )


def _unwrap(scope: QueryScope) -> QueryScope:
    """The SELECT scope of ``LATERAL (SELECT ...)`` (sqlglot wraps it in a UDTF scope)."""
    if isinstance(scope.expression, exp.Lateral) and len(scope.subquery_scopes) == 1:
        return scope.subquery_scopes[0]
    return scope


def _person_key(keys: list[exp.Expression], persons: dict[str, exp.Table | QueryScope]) -> bool:
    """True when one of ``keys`` (GROUP BY, PARTITION BY or DISTINCT ON keys) is the bare
    ``person_id`` column of a local person source. An expression of it (``t.person_id IS
    NOT NULL``, ``t.person_id > 0``) can put every person in one group, so it does not
    count; neither do ROLLUP/CUBE/GROUPING SETS, which add groups across persons."""
    for key in keys:
        bare = key
        while isinstance(bare, exp.Paren):
            bare = bare.this
        if isinstance(bare, exp.Column) and bare.name == PID and bare.table in persons:
            return True
    return False


def _top_n(arg: str) -> ScopeViolation:
    clause = "LIMIT, FETCH or TOP" if arg == "limit" else "OFFSET"
    return ScopeViolation(
        "aggregates.cross-person",
        f"{clause} inside a subquery keeps the top rows across persons, so which persons "
        "the outer counts see depends on other persons' values; use it only in a subquery "
        "correlated on the outer person (WHERE t.person_id = p.person_id) or in the "
        "outermost query",
        name=clause,
    )


def _in_left_side(query: exp.Expr) -> exp.Expr | None:
    """``x`` when ``query`` is the subquery of ``x IN (query)``."""
    parent = query.parent
    while isinstance(parent, exp.Subquery | exp.Paren):
        parent = parent.parent
    if isinstance(parent, exp.In) and parent.args.get("query") is not None:
        return parent.this
    return None


def _projected_person(scope: QueryScope) -> str | None:
    """The local person source whose ``person_id`` an ``IN`` subquery selects."""
    select = scope.expression
    if not isinstance(select, exp.Select) or len(select.expressions) != 1:
        return None
    value = select.expressions[0].unalias()
    if not isinstance(value, exp.Column) or value.name != PID:
        return None
    return _passed_through(scope, select.expressions[0])


def _person_alias(scope: QueryScope, name: str = PID) -> str | None:
    """The local source whose ``person_id`` the output ``name`` of ``scope`` passes through
    unchanged, traced down to a person table; ``None`` when it does not."""
    select = scope.expression
    if not isinstance(select, exp.Select):
        return None
    projection = next((p for p in select.expressions if p.alias_or_name == name), None)
    return None if projection is None else _passed_through(scope, projection)


def _passed_through(scope: QueryScope, projection: exp.Expression) -> str | None:
    value = projection.unalias()
    if not isinstance(value, exp.Column) or not value.table:
        return None
    entry = scope.selected_sources.get(value.table)
    if entry is None:
        return None
    source = entry[1]
    if isinstance(source, exp.Table):
        traced = _is_person_table(source.name) and value.name == PID
    else:
        traced = _person_alias(_unwrap(source), value.name) is not None
    return value.table if traced else None


def _no_person(alias: str) -> ScopeViolation:
    return ScopeViolation(
        "aggregates.no-person",
        f"the persons behind source {alias} cannot be counted; pass person_id through it "
        "unchanged (SELECT ..., person_id FROM ...)",
        name=alias,
    )


def _is_person_table(name: str) -> bool:
    """A table counted by ``person_id`` (``cohort``, whose person is ``subject_id``, is
    never in a scope)."""
    return person_column(name) == PID
