"""Read an aggregate query: its group keys, its aggregates and their value bounds.

The top-level SELECT must be an aggregation: every output column is a group key or one
supported aggregate. Bounds for each aggregated value come, in this order, from

1. a clamp written in the query: ``AVG(LEAST(GREATEST(x, 60), 250))`` (either nesting);
2. the ``bounds=`` argument, keyed by output column name or by the value's column name;
3. a ``CASE`` whose branches are all numeric literals (its range is known from the SQL);
4. the metadata (``bounds.yaml``): per measurement/observation concept for
   ``value_as_number`` (found from ``*_concept_id = N`` filters in the query), per column
   name otherwise, per calendar part for ``EXTRACT(YEAR FROM d)``.

A value with no bounds is refused: bounds are never guessed from the data.

>>> a = analyse("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1")
>>> [(k.name, k.keys) for k in a.keys], [(g.name, g.kind) for g in a.aggregates]
([('gender_concept_id', (8507, 8532))], [('n', 'count')])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from sqlglot import exp

from sde.dp.locality import Locality, QueryLevel, refuse
from sde.dp.metadata import CONCEPT_COLUMNS, Bounds, Metadata, ValueRef
from sde.dp.totality import Checker
from sde.errors import InvalidInput
from sde.omop.cdm import CDM
from sde.proxy.parse import parse_sql

#: Aggregate kinds and what they need.
NEEDS_BOUNDS = {"sum", "avg", "var", "std", "quantile"}

_SIMPLE = {
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Variance: "var",
    exp.VariancePop: "var",
    exp.Stddev: "std",
    exp.StddevSamp: "std",
    exp.StddevPop: "std",
}
_POPULATION = (exp.VariancePop, exp.StddevPop)


@dataclass(frozen=True)
class Aggregate:
    name: str
    kind: str  # count | count_value | count_persons | sum | avg | var | std | quantile
    value: exp.Expression | None = None
    bounds: Bounds | None = None
    sample: bool = True
    q: float | None = None

    @property
    def value_sql(self) -> str | None:
        return None if self.value is None else self.value.sql()


@dataclass(frozen=True)
class GroupKey:
    name: str
    expr: exp.Expression
    keys: tuple[Any, ...] | None
    groups_per_person: int | None
    shown: bool = True
    #: Known to be a number (hashed as DECIMAL text, identical on every engine).
    numeric: bool = False
    #: Its static type's family (:mod:`sde.dp.types`): float keys are normalised before
    #: grouping (:func:`sde.dp.rewrite.normalised_key`).
    family: str = "any"


@dataclass
class Analysis:
    """Everything the rewrite and the mechanisms need, and nothing about data."""

    tree: exp.Select
    dialect: str
    pid: exp.Column
    keys: list[GroupKey]
    aggregates: list[Aggregate]
    #: Output columns in SELECT order: ("key", i) or ("agg", i).
    outputs: list[tuple[str, int]]
    order_by: list[tuple[str, bool]] = field(default_factory=list)
    limit: int | None = None
    tables: set[str] = field(default_factory=set)

    @property
    def columns(self) -> list[str]:
        return [
            self.keys[i].name if kind == "key" else self.aggregates[i].name
            for kind, i in self.outputs
        ]


def parse(sql: str, dialect: str) -> exp.Select:
    """One SELECT statement, or a refusal. Unparseable SQL is never passed through.

    The proxy's parser reads it (:func:`sde.proxy.parse.parse_sql`: its character, size and
    ``Command`` refusals stand as they are); text that is not one query is ``dp.parse``.
    """
    try:
        tree = parse_sql(sql, dialect)
    except InvalidInput as err:
        raise refuse("parse", f"the query is not one SELECT statement: {err.message}") from None
    if isinstance(tree, exp.Union):
        raise refuse(
            "set-operation",
            "UNION/INTERSECT/EXCEPT at the top of a DP query is not "
            "available; aggregate each part separately",
        )
    if not isinstance(tree, exp.Select):
        raise refuse("non-aggregate", "only SELECT queries can be answered")
    return tree


def analyse(
    sql: str,
    dialect: str = "postgres",
    *,
    metadata: Metadata | None = None,
    bounds: Mapping[str, Sequence[float]] | None = None,
    keys: Mapping[str, Sequence[Any]] | None = None,
) -> Analysis:
    """Check ``sql`` is a DP-answerable aggregate and describe it (no data is read)."""
    md = metadata or Metadata.default()
    tree = parse(sql, dialect)
    loc = Locality()
    loc.with_ctes(tree)
    level = loc.level_of(tree)
    loc.check_joins(tree, level)
    loc.check_predicates(tree, level)
    root = level.root  # None only without person data: check_joins refused the rest
    if root is None:
        raise refuse(
            "no-person",
            "a DP query must read person data (the privacy unit is the "
            "person); vocabulary tables can be queried with conn.sql()",
        )
    _check_top(tree)
    pid = exp.column(root.pid_col or "person_id", table=root.alias)
    concepts = _concept_filters(tree)
    ctx = _Ctx(level, concepts, md, dict(bounds or {}), dict(keys or {}), dialect)
    group_keys, aggregates, outputs = _columns(tree, ctx)
    analysis = Analysis(
        tree,
        dialect,
        pid,
        group_keys,
        aggregates,
        outputs,
        tables=set().union(*(r.tables for r in level.relations)),
    )
    analysis.order_by = _order_by(tree, analysis)
    analysis.limit = _limit(tree)
    # Last, so that the rules above name what they refuse; rewrites in place (the keys
    # and values above are nodes of ``tree``), so the exact SQL runs the total forms.
    checker = Checker(tree)
    checker.query(tree)
    analysis.keys = [_typed(k, checker) for k in group_keys]
    return analysis


def _columns(
    tree: exp.Select, ctx: _Ctx
) -> tuple[list[GroupKey], list[Aggregate], list[tuple[str, int]]]:
    """The group keys (hidden ones last), the aggregates, and the outputs in SELECT order."""
    group_exprs = _group_exprs(tree)
    projections = tree.expressions
    if any(
        isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star) for p in projections
    ):
        raise refuse("non-aggregate", "SELECT * returns rows; a DP query returns aggregates only")
    group_keys: list[GroupKey] = []
    aggregates: list[Aggregate] = []
    outputs: list[tuple[str, int]] = []
    for p in projections:
        inner = p.unalias()
        name = p.alias if isinstance(p, exp.Alias) else _default_name(inner, ctx.dialect)
        if inner.find(exp.AggFunc) or isinstance(inner, exp.WithinGroup):
            aggregates.append(_aggregate(name, inner, ctx))
            outputs.append(("agg", len(aggregates) - 1))
            continue
        if not any(g == inner for g in group_exprs):
            raise refuse(
                "non-aggregate",
                f"output column {name} is neither a GROUP BY key nor an aggregate: "
                "row-level values are not available in dp mode",
            )
        group_keys.append(_group_key(name, inner, ctx))
        outputs.append(("key", len(group_keys) - 1))
    if not aggregates:
        raise refuse(
            "non-aggregate",
            "a DP query must aggregate (COUNT, SUM, AVG, ...): "
            "row-level access is not available in dp mode",
        )
    for g in group_exprs:
        if not any(k.expr == g for k in group_keys):
            group_keys.append(_group_key(g.sql(dialect=ctx.dialect), g, ctx, shown=False))
    columns = [group_keys[i].name if k == "key" else aggregates[i].name for k, i in outputs]
    if len(set(columns)) != len(columns):
        raise refuse("duplicate-column", "give each output column a distinct name (AS ...)")
    return group_keys, aggregates, outputs


def _typed(key: GroupKey, checker: Checker) -> GroupKey:
    """``key`` with its static type; a key whose type is unknown is refused (it could be a
    float whose NaN and NULL cells the release would merge)."""
    t = checker.types.get(id(key.expr))
    if t is None or t.family == "any":
        raise refuse(
            "group-by",
            f"the type of the key {key.name} is not known; CAST it to a type",
        )
    return replace(key, family=t.family)


# -- checks ------------------------------------------------------------------------------


def _check_top(tree: exp.Select) -> None:
    if tree.args.get("distinct"):
        raise refuse("distinct", "SELECT DISTINCT returns rows; use GROUP BY with an aggregate")
    if tree.args.get("having") is not None:
        raise refuse(
            "having",
            "HAVING would filter on exact values; filter the released "
            "DataFrame instead (post-processing is free)",
        )
    if tree.find(exp.Window):
        raise refuse("window", "window functions are not available in the outer DP query")
    if tree.args.get("offset") is not None:
        raise refuse("order-by", "OFFSET is not available in DP queries")
    group = tree.args.get("group")
    if group is not None and any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")):
        raise refuse(
            "group-by", "ROLLUP/CUBE/GROUPING SETS are not available; run one query per grouping"
        )


def _group_exprs(tree: exp.Select) -> list[exp.Expression]:
    group = tree.args.get("group")
    if group is None:
        return []
    out: list[exp.Expression] = []
    projections = tree.expressions
    aliases = {p.alias: p.unalias() for p in projections if isinstance(p, exp.Alias)}
    for item in group.expressions:
        g = item
        if isinstance(item, exp.Literal) and not item.is_string:
            idx = int(item.this) - 1
            if not 0 <= idx < len(projections):
                raise refuse("group-by", f"GROUP BY {item.this} does not name an output column")
            g = projections[idx].unalias()
        elif isinstance(item, exp.Column) and not item.table and item.name in aliases:
            g = aliases[item.name]
        if g.find(exp.AggFunc) or g.find(exp.Subquery):
            raise refuse("group-by", "GROUP BY keys must be row-level expressions")
        if (
            isinstance(g, exp.Column)
            and g.name.endswith("_id")
            and not g.name.endswith("concept_id")
        ):
            raise refuse(
                "row-level",
                f"GROUP BY {g.sql()} would release one row per record "
                "or person; group by concepts, categories or dates instead",
            )
        out.append(g)
    return out


def _default_name(inner: exp.Expression, dialect: str) -> str:
    if isinstance(inner, exp.Column):
        return inner.name
    return inner.sql(dialect=dialect)


def _order_by(tree: exp.Select, a: Analysis) -> list[tuple[str, bool]]:
    order = tree.args.get("order")
    if order is None:
        return []
    cols = a.columns
    inners = [p.unalias() for p in tree.expressions]
    result = []
    for o in order.expressions:
        e = o.this
        if isinstance(e, exp.Literal) and not e.is_string and 1 <= int(e.this) <= len(cols):
            name = cols[int(e.this) - 1]
        elif isinstance(e, exp.Column) and not e.table and e.name in cols:
            name = e.name
        elif e in inners:
            name = cols[inners.index(e)]
        else:
            raise refuse("order-by", "ORDER BY may only name output columns of a DP query")
        result.append((name, bool(o.args.get("desc"))))
    return result


def _limit(tree: exp.Select) -> int | None:
    limit = tree.args.get("limit")
    if limit is None:
        return None
    value = limit.expression
    if not (isinstance(value, exp.Literal) and not value.is_string):
        raise refuse("order-by", "LIMIT must be a number")
    return int(value.this)


# -- aggregates and keys ---------------------------------------------------------------


@dataclass
class _Ctx:
    level: QueryLevel
    concepts: dict[str, frozenset[int]]
    md: Metadata
    bounds: dict[str, Sequence[float]]
    keys: dict[str, Sequence[Any]]
    dialect: str


def _aggregate(name: str, inner: exp.Expression, ctx: _Ctx) -> Aggregate:
    if isinstance(inner, exp.Filter):
        raise refuse(
            "unsupported-aggregate",
            "FILTER (WHERE ...) on aggregates is not "
            "available; put the condition in a CASE inside the aggregate",
        )
    agg, q = _unwrap_quantile(inner)
    if agg is None:
        raise refuse(
            "unsupported-aggregate",
            f"{name}: an output column must be one aggregate (COUNT, SUM, AVG, VARIANCE, "
            "STDDEV, MEDIAN, PERCENTILE_CONT); compute ratios and rounding from the result",
        )
    if isinstance(agg, exp.Count):
        return _count(name, agg, ctx)
    if isinstance(agg.this, exp.Distinct):
        raise refuse(
            "unsupported-aggregate",
            f"{name}: DISTINCT is only available as COUNT(DISTINCT person_id)",
        )
    simple = next((k for t, k in _SIMPLE.items() if type(agg) is t), None)
    if q is not None:
        kind, value = "quantile", agg.this
    elif simple is not None:
        kind, value = simple, agg.this
    else:
        hint = (
            " (use PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY x) for a robust maximum)"
            if isinstance(agg, exp.Max | exp.Min)
            else ""
        )
        raise refuse(
            "unsupported-aggregate",
            f"{name}: {agg.key.upper()} is not available in DP queries{hint}",
        )
    if value.find(exp.AggFunc) or value.find(exp.Subquery) or value.find(exp.Window):
        raise refuse(
            "unsupported-aggregate", f"{name}: aggregate arguments must be row-level expressions"
        )
    value, bounds = _bounds(name, value, ctx)
    return Aggregate(name, kind, value, bounds, sample=not isinstance(agg, _POPULATION), q=q)


def _unwrap_quantile(inner: exp.Expression) -> tuple[exp.Expression | None, float | None]:
    """(aggregate with the value in ``this``, quantile or None)."""
    if isinstance(inner, exp.WithinGroup) and isinstance(
        inner.this, exp.PercentileCont | exp.PercentileDisc
    ):
        order = inner.expression
        q = _number(inner.this.this)
        if q is None or not isinstance(order, exp.Order) or len(order.expressions) != 1:
            raise refuse(
                "unsupported-aggregate", "PERCENTILE_CONT needs a number and one ORDER BY value"
            )
        value = order.expressions[0].this
        return exp.Median(this=value), _quantile(q)
    if isinstance(inner, exp.Median):
        return inner, 0.5
    if isinstance(inner, exp.PercentileCont | exp.PercentileDisc | exp.Quantile):
        q = _number(inner.expression) if inner.expression is not None else None
        if q is None:
            raise refuse("unsupported-aggregate", "a quantile needs a number in [0, 1]")
        return exp.Median(this=inner.this), _quantile(q)
    if isinstance(inner, exp.AggFunc):
        return inner, None
    return None, None


def _quantile(q: float) -> float:
    if not 0.0 < q < 1.0:
        raise refuse(
            "unsupported-aggregate",
            "quantiles must lie strictly between 0 and 1; MIN and MAX are not available under DP",
        )
    return float(Fraction(q).limit_denominator(1000))


def _count(name: str, agg: exp.Count, ctx: _Ctx) -> Aggregate:
    arg = agg.this
    if isinstance(arg, exp.Star):
        return Aggregate(name, "count")
    if isinstance(arg, exp.Distinct):
        cols = arg.expressions
        if len(cols) == 1 and ctx.level.is_pid(cols[0]):
            return Aggregate(name, "count_persons", cols[0])
        raise refuse(
            "unsupported-aggregate",
            f"{name}: COUNT(DISTINCT ...) is only available "
            "for the person: COUNT(DISTINCT person_id)",
        )
    if arg.find(exp.AggFunc) or arg.find(exp.Subquery):
        raise refuse("unsupported-aggregate", f"{name}: aggregate arguments must be row-level")
    return Aggregate(name, "count_value", arg)


def _bounds(name: str, value: exp.Expression, ctx: _Ctx) -> tuple[exp.Expression, Bounds]:
    clamp = _clamp(value)
    if clamp is not None:
        inner, lo, hi = clamp
        return inner, Bounds.of(lo, hi, source="query")
    for key in (
        name,
        value.sql(dialect=ctx.dialect),
        value.name if isinstance(value, exp.Column) else None,
    ):
        if key is not None and key in ctx.bounds:
            spec = list(ctx.bounds[key])
            res = spec[2] if len(spec) > 2 else None
            return value, Bounds.of(spec[0], spec[1], res, source="argument")
    case = _case_range(value)
    if case is not None:
        return value, Bounds.of(*case, source="case")
    ref = _ref(value, ctx)
    found = ctx.md.bounds_for(ref) if ref is not None else None
    if found is None:
        raise refuse(
            "bounds-missing",
            f"{name}: no bounds for {value.sql(dialect=ctx.dialect)}. State them in the query "
            f"(LEAST(GREATEST(x, lower), upper)) or with bounds={{'{name}': (lower, upper)}}; "
            "bounds are never taken from the data",
        )
    return value, found


def _clamp(value: exp.Expression) -> tuple[exp.Expression, float, float] | None:
    outer_kinds = ((exp.Least, exp.Greatest), (exp.Greatest, exp.Least))
    for outer, inner_kind in outer_kinds:
        if isinstance(value, outer) and len(value.expressions) == 1:
            inner = value.this
            if isinstance(inner, inner_kind) and len(inner.expressions) == 1:
                a = _number(value.expressions[0])
                b = _number(inner.expressions[0])
                if a is not None and b is not None:
                    lo, hi = (b, a) if outer is exp.Least else (a, b)
                    if lo < hi:
                        return inner.this, lo, hi
    return None


def _case_range(value: exp.Expression) -> tuple[float, float] | None:
    if not isinstance(value, exp.Case):
        return None
    branches = [i.args.get("true") for i in value.args.get("ifs") or []]
    default = value.args.get("default")
    if default is not None:
        branches.append(default)
    nums = [_number(b) if not isinstance(b, exp.Null) else None for b in branches]
    known = [n for n, b in zip(nums, branches, strict=True) if not isinstance(b, exp.Null)]
    if not known or any(n is None for n in known):
        return None
    lo, hi = min(n for n in known if n is not None), max(n for n in known if n is not None)
    return (lo, hi) if lo < hi else (lo - 1.0, hi) if lo == hi else None


def _number(e: exp.Expression | None) -> float | None:
    if isinstance(e, exp.Paren):
        return _number(e.this)
    if isinstance(e, exp.Neg):
        n = _number(e.this)
        return None if n is None else -n
    if isinstance(e, exp.Cast):
        return _number(e.this)
    if isinstance(e, exp.Literal) and not e.is_string:
        return float(e.this)
    return None


def _date_part(e: exp.Expression) -> tuple[str, exp.Expression] | None:
    if isinstance(e, exp.Extract) and isinstance(e.this, exp.Var | exp.Identifier):
        return e.this.name.lower(), e.expression
    if isinstance(e, exp.Year):
        return "year", e.this
    if isinstance(e, exp.Month):
        return "month", e.this
    return None


def _ref(value: exp.Expression, ctx: _Ctx) -> ValueRef | None:
    part = _date_part(value)
    if part is not None:
        return ValueRef(None, date_part=part[0])
    if not isinstance(value, exp.Column):
        return None
    rel = ctx.level.resolve(value)
    table = rel.origin if rel is not None else None
    return ValueRef(value.name, table, concepts=ctx.concepts)


def _group_key(name: str, expr: exp.Expression, ctx: _Ctx, shown: bool = True) -> GroupKey:
    given = ctx.keys.get(name)
    if given is None and isinstance(expr, exp.Column):
        given = ctx.keys.get(expr.name)
    ref = _ref(expr, ctx)
    spec = ctx.md.keys_for(ref) if ref is not None else None
    gpp = spec.groups_per_person if spec is not None else None
    numeric = _is_numeric(expr, ctx)
    if given is not None:
        return GroupKey(name, expr, tuple(given), gpp, shown, numeric)
    return GroupKey(name, expr, spec.keys if spec is not None else None, gpp, shown, numeric)


def _is_numeric(expr: exp.Expression, ctx: _Ctx) -> bool:
    if _date_part(expr) is not None:
        return True
    if not isinstance(expr, exp.Column):
        return False
    rel = ctx.level.resolve(expr)
    if rel is None or rel.origin is None or not CDM.has_table(rel.origin):
        return False
    table = CDM.table(rel.origin)
    return table.has_column(expr.name) and table.column(expr.name).base_type in {
        "integer",
        "numeric",
    }


def _concept_filters(tree: exp.Expression) -> dict[str, frozenset[int]]:
    """``measurement_concept_id = N`` / ``IN (...)`` literals anywhere in the query."""
    found: dict[str, set[int]] = {}
    for node in tree.find_all(exp.EQ, exp.In):
        col = node.this
        if isinstance(node, exp.EQ) and not isinstance(col, exp.Column):
            col, other = node.expression, [node.this]
        else:
            other = [node.expression] if isinstance(node, exp.EQ) else node.expressions
        if not isinstance(col, exp.Column) or col.name not in CONCEPT_COLUMNS:
            continue
        if isinstance(node.parent, exp.Not):
            continue
        nums = [_number(o) for o in other]
        if nums and all(n is not None and float(n).is_integer() for n in nums):
            found.setdefault(CONCEPT_COLUMNS[col.name], set()).update(int(n) for n in nums if n)
    return {k: frozenset(v) for k, v in found.items()}
