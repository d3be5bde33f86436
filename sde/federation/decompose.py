"""Aggregates as per-node partials, and the researcher's outputs over the merged groups.

Each aggregate of the outermost SELECT (a *unit*: ``COUNT(x) FILTER (WHERE ...)`` with its
clause, not the function a window runs over it) becomes one or more *partials* that a
node computes, and a *merged value* the coordinator computes from the stacked partials:

=================================  ================================  ====================
unit                               partials (per node)               merged
=================================  ================================  ====================
COUNT(*), COUNT(x), COUNT_IF(c)    the same                          SUM
COUNT(DISTINCT t.person_id)        the same (persons on one node)    SUM
SUM(x)                             SUM(x)                            SUM
AVG(x)                             SUM(x), COUNT(x)                  SUM / SUM
MIN(x), MAX(x)                     the same                          MIN, MAX
VAR_SAMP, VAR_POP, STDDEV_SAMP...  COUNT(x), AVG(x), VAR_POP(x)      pooled M2 (Chan)
CORR, COVAR_POP, COVAR_SAMP        pairs' COUNT, AVG(x), AVG(y),     pooled co-moment
                                   COVAR_POP, VAR_POP(x), VAR_POP(y)
=================================  ================================  ====================

The variance merge adds each node's sum of squared deviations about its own mean and
the between-node term ``n_i (mean_i - mean)^2`` (likewise the co-moment, with
``n_i (mean_x_i - mean_x)(mean_y_i - mean_y)``): no sums of squares of raw values, so no
cancellation when the mean is large beside the spread.

The researcher's outputs, HAVING, QUALIFY, ORDER BY, DISTINCT, LIMIT and OFFSET are
lifted onto the merged groups: each group key becomes ``__sde_groups.f_k<i>`` and each
unit ``__sde_groups.__sde_m<j>``, as :mod:`sde.proxy.rules.threshold` does for one node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import build_scope

from sde.federation.locality import person_column
from sde.proxy.allowlists import function_name

#: The table of merged groups the researcher's outputs read.
GROUPS = "__sde_groups"

#: Arguments of the outermost SELECT the split understands.
_KNOWN = frozenset(
    {
        "expressions",
        "from_",
        "joins",
        "laterals",
        "where",
        "group",
        "having",
        "qualify",
        "order",
        "limit",
        "offset",
        "distinct",
        "with_",
    }
)
#: Clauses of the outermost SELECT that each node runs; the merge runs the others.
_AT_NODES = frozenset({"from_", "joins", "laterals", "where", "group", "with_"})
_CLAUSE_WORDS = {
    "expressions": "the outputs",
    "having": "HAVING",
    "qualify": "QUALIFY",
    "order": "ORDER BY",
    "distinct": "DISTINCT ON",
    "limit": "LIMIT",
    "offset": "OFFSET",
}
_VARIANCES: dict[type[exp.Expr], str] = {
    exp.Variance: "var_samp",
    exp.VariancePop: "var_pop",
    exp.Stddev: "std_samp",
    exp.StddevSamp: "std_samp",
    exp.StddevPop: "std_pop",
}


_COMOMENTS: dict[type[exp.Expr], str] = {
    exp.Corr: "corr",
    exp.CovarPop: "covar_pop",
    exp.CovarSamp: "covar_samp",
}


class NotDecomposable(Exception):
    """A part of the query cannot be computed from per-node parts; says which and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Partial:
    """One per-node aggregate ``f_a<i>``."""

    kind: str  # count, sum, min, max, mean, var_pop
    expression: exp.Expression
    type: str


@dataclass(frozen=True)
class Unit:
    """One aggregate of the researcher's outermost SELECT and how it is merged."""

    kind: str  # count, sum, min, max, avg, var_samp, var_pop, std_samp, std_pop
    expression: exp.Expression
    partials: tuple[int, ...]
    type: str


@dataclass
class Decomposition:
    keys: list[exp.Expression]
    key_types: list[str]
    partials: list[Partial] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    #: The researcher's outermost SELECT reading ``__sde_groups`` (their dialect).
    final: exp.Select | None = None
    columns: list[str] = field(default_factory=list)

    @property
    def part_columns(self) -> list[str]:
        return [
            *(f"f_k{i}" for i in range(len(self.keys))),
            *(f"f_a{i}" for i in range(len(self.partials))),
        ]

    @property
    def part_types(self) -> list[str]:
        return [*self.key_types, *(p.type for p in self.partials)]

    def partial(self, kind: str, expression: exp.Expression, type_: str) -> int:
        text = expression.sql()
        for i, known in enumerate(self.partials):
            if known.kind == kind and known.expression.sql() == text:
                return i
        self.partials.append(Partial(kind, expression, type_))
        return len(self.partials) - 1


def decompose(select: exp.Select) -> Decomposition:
    """The keys, partials and merged outputs of an aggregating outermost SELECT (typed)."""
    _check_clauses(select)
    group = select.args.get("group")
    keys = list(group.expressions) if group is not None else []
    split = Decomposition(keys=[k.copy() for k in keys], key_types=[_type(k) for k in keys])
    root = build_scope(select)
    is_person: Callable[[exp.Column], bool] = (
        (lambda c: person_column(root, c)) if root is not None else (lambda c: False)
    )
    for unit in _units(select):
        if not any(u.expression == unit for u in split.units):
            split.units.append(_unit(unit, split, is_person))
    if not split.partials:  # GROUP BY keys only: a node part carries at least one partial
        split.partial("count", exp.Count(this=exp.Star()), "BIGINT")
    split.final = _final(select, split)
    split.columns = [p.alias_or_name for p in select.expressions]
    return split


def _check_clauses(select: exp.Select) -> None:
    for arg, value in select.args.items():
        if value and arg not in _KNOWN:
            raise NotDecomposable(f"the {arg.upper()} clause of the outermost SELECT")
    group = select.args.get("group")
    if group is not None and any(v for k, v in group.args.items() if k != "expressions"):
        raise NotDecomposable("GROUP BY ROLLUP, CUBE, GROUPING SETS or ALL across nodes")
    # Every clause the merge runs (all but those each node runs) must hold no subquery: the
    # merge would evaluate it over the nodes' parts. Listed by what goes to the nodes, so a
    # clause added later (DISTINCT ON, LIMIT, a named WINDOW) is checked by default.
    for arg, value in select.args.items():
        if arg in _AT_NODES or not value:
            continue
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, exp.Expression) and any(
                q is not select for q in part.find_all(exp.Query)
            ):
                raise NotDecomposable(
                    f"a subquery in {_CLAUSE_WORDS.get(arg, arg.upper())} of the outermost "
                    "SELECT would be evaluated on each node's groups"
                )


def _top_parts(select: exp.Select) -> list[exp.Expression]:
    parts: list[exp.Expression] = list(select.expressions)
    for arg in ("having", "qualify", "order"):
        value = select.args.get(arg)
        if value is not None:
            parts.append(value)
    return parts


def _units(select: exp.Select) -> list[exp.Expression]:
    out = []
    for part in _top_parts(select):
        for node in part.dfs(prune=_is_unit):
            if isinstance(node, exp.Expression) and _is_unit(node):
                out.append(node)
    return out


def _is_unit(node: exp.Expr) -> bool:
    parent = node.parent
    if isinstance(parent, exp.Window) and node.arg_key == "this":
        return False
    if isinstance(node, exp.Filter | exp.WithinGroup):
        return isinstance(node.this, exp.AggFunc)
    if not isinstance(node, exp.AggFunc):
        return False
    return not (isinstance(parent, exp.Filter | exp.WithinGroup) and node.arg_key == "this")


def _unit(
    node: exp.Expression, split: Decomposition, is_person: Callable[[exp.Column], bool]
) -> Unit:
    where = node.expression if isinstance(node, exp.Filter) else None
    agg = node.this if isinstance(node, exp.Filter | exp.WithinGroup) else node
    name = function_name(agg).upper() if isinstance(agg, exp.Func) else "this aggregate"
    if isinstance(node, exp.WithinGroup) or not isinstance(agg, exp.AggFunc):
        raise _not_decomposable(name)

    def filtered(part: exp.Expression) -> exp.Expression:
        return exp.Filter(this=part, expression=where.copy()) if where is not None else part

    if isinstance(agg.this, exp.Distinct):
        return _distinct(node, agg, name, split, is_person)
    if isinstance(agg, exp.Count | exp.CountIf):
        return Unit("count", node, (split.partial("count", node.copy(), "BIGINT"),), "BIGINT")
    if isinstance(agg, exp.Sum | exp.Min | exp.Max):
        kind = type(agg).__name__.lower()
        index = split.partial(kind, node.copy(), _type(node))
        return Unit(kind, node, (index,), _type(node))
    value = agg.this
    if isinstance(agg, exp.Avg) and not agg.args.get("expressions"):
        total = split.partial("sum", filtered(exp.Sum(this=value.copy())), _type(node, "DOUBLE"))
        count = split.partial("count", filtered(exp.Count(this=value.copy())), "BIGINT")
        return Unit("avg", node, (total, count), "DOUBLE")
    if type(agg) in _COMOMENTS:
        return _comoment(node, agg, where, split)
    if type(agg) in _VARIANCES:
        indexes = (
            split.partial("count", filtered(exp.Count(this=value.copy())), "BIGINT"),
            split.partial("mean", filtered(exp.Avg(this=value.copy())), "DOUBLE"),
            split.partial("var_pop", filtered(exp.VariancePop(this=value.copy())), "DOUBLE"),
        )
        return Unit(_VARIANCES[type(agg)], node, indexes, "DOUBLE")
    raise _not_decomposable(name)


def _comoment(
    node: exp.Expression, agg: exp.AggFunc, where: exp.Expression | None, split: Decomposition
) -> Unit:
    """CORR, COVAR_POP, COVAR_SAMP: per node the pairs' count, both means, the population
    covariance and both population variances, over the rows where both values are present
    (as the aggregate itself reads them)."""
    x, y = agg.this, agg.expression
    if not isinstance(x, exp.Expression) or not isinstance(y, exp.Expression):
        raise _not_decomposable(function_name(agg).upper())
    present = exp.and_(
        *(exp.Not(this=exp.Is(this=v.copy(), expression=exp.Null())) for v in (x, y))
    )
    condition = exp.and_(where.this.copy(), present) if isinstance(where, exp.Where) else present

    def pairs(part: exp.Expression) -> exp.Expression:
        return exp.Filter(this=part, expression=exp.Where(this=condition.copy()))

    indexes = (
        split.partial("count", pairs(exp.Count(this=exp.Star())), "BIGINT"),
        split.partial("mean", pairs(exp.Avg(this=x.copy())), "DOUBLE"),
        split.partial("mean", pairs(exp.Avg(this=y.copy())), "DOUBLE"),
        split.partial(
            "covar_pop", pairs(exp.CovarPop(this=x.copy(), expression=y.copy())), "DOUBLE"
        ),
        split.partial("var_pop", pairs(exp.VariancePop(this=x.copy())), "DOUBLE"),
        split.partial("var_pop", pairs(exp.VariancePop(this=y.copy())), "DOUBLE"),
    )
    return Unit(_COMOMENTS[type(agg)], node, indexes, "DOUBLE")


def _distinct(
    node: exp.Expression,
    agg: exp.AggFunc,
    name: str,
    split: Decomposition,
    is_person: Callable[[exp.Column], bool],
) -> Unit:
    values = agg.this.expressions
    value = values[0] if len(values) == 1 else None
    if isinstance(agg, exp.Count) and isinstance(value, exp.Column) and is_person(value):
        return Unit("count", node, (split.partial("count", node.copy(), "BIGINT"),), "BIGINT")
    raise NotDecomposable(
        f"{name}(DISTINCT ...) cannot be computed from per-node parts (only "
        "COUNT(DISTINCT person_id) of a person-level table can: a person is on one node)"
    )


def _not_decomposable(name: str) -> NotDecomposable:
    return NotDecomposable(f"{name}(...) cannot be computed from per-node parts")


def _type(node: exp.Expression, default: str = "") -> str:
    kind = node.type if isinstance(node.type, exp.DataType) else None
    if kind is None or kind.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
        return default
    return kind.sql("duckdb")


# -- the researcher's outputs over the merged groups ----------------------------------------


def _final(select: exp.Select, split: Decomposition) -> exp.Select:
    lift = _Lifter(split)
    outputs = [
        exp.alias_(lift(p.unalias()), p.alias_or_name, quoted=True) for p in select.expressions
    ]
    final = exp.Select(expressions=outputs)
    final.set("from_", exp.From(this=exp.to_table(GROUPS, quoted=True)))
    having = select.args.get("having")
    if having is not None:
        final.set("where", exp.Where(this=lift(having.this)))
    qualify = select.args.get("qualify")
    if qualify is not None:
        final.set("qualify", exp.Qualify(this=lift(qualify.this)))
    order = select.args.get("order")
    if order is not None:
        final.set("order", lift(order))
    distinct = select.args.get("distinct")
    if distinct is not None:
        final.set("distinct", lift(distinct))  # DISTINCT ON (keys) reads the merged keys
    for arg in ("limit", "offset"):
        value = select.args.get(arg)
        if value is not None:
            final.set(arg, value.copy())
    _check_lifted(final, set(select.named_selects))
    return final


class _Lifter:
    def __init__(self, split: Decomposition) -> None:
        self.split = split

    def __call__(self, node: exp.Expression) -> exp.Expression:
        return node.copy().transform(self._swap)

    def _swap(self, node: exp.Expression) -> exp.Expression:
        if _is_unit(node):
            for j, unit in enumerate(self.split.units):
                if node == unit.expression:
                    return exp.column(f"__sde_m{j}", table=GROUPS, quoted=True)
        for i, key in enumerate(self.split.keys):
            if node == key:
                return exp.column(f"f_k{i}", table=GROUPS, quoted=True)
        return node


def _check_lifted(final: exp.Select, outputs: set[str]) -> None:
    for column in final.find_all(exp.Column):
        if column.table == GROUPS:
            continue
        if not column.table and column.find_ancestor(exp.Order) and column.name in outputs:
            continue  # ORDER BY an output name
        raise NotDecomposable(
            f"column {column.name} is outside the aggregates and the GROUP BY keys of the "
            "outermost SELECT"
        )
    for agg in final.find_all(exp.AggFunc):
        if not (isinstance(agg.parent, exp.Window) and agg.arg_key == "this"):
            name = function_name(agg).upper()
            raise _not_decomposable(name)
