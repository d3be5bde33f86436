"""Rule ``aggregates.*``: in ``aggregates`` mode, only grouped aggregate results.

The outermost query must be one SELECT whose outputs are GROUP BY keys or
aggregates of a safe kind (counts, sums, means, spreads, quantiles: no MIN,
MAX, lists or first values, which return one person's own value). To count the
persons behind each group, every person-level source of the outer query (a
table with ``person_id``, or a subquery/CTE passing ``person_id`` straight
through from one) gets a hidden ``COUNT(DISTINCT person_id)`` output; the
connection drops groups under the project's threshold for *any* source and
reports them. A source whose persons cannot be traced is refused.

Not a formal guarantee: thresholds do not stop differencing between queries or
predicates aimed at one person; projects needing that use ``dp`` mode.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from sde.errors import ScopeViolation
from sde.proxy.allowlists import SAFE_AGGREGATES, function_name
from sde.proxy.context import RuleContext, is_person_table

#: Prefix of the hidden person-count outputs the connection reads and drops.
HIDDEN_PREFIX = "__sde_persons_"


def rewrite(expression: exp.Expression, ctx: RuleContext) -> exp.Expression:
    """Check the shape and add the hidden person counts (aggregates mode only)."""
    if ctx.scope.access != "aggregates":
        return expression
    if not isinstance(expression, exp.Select):
        raise _shape(ctx, "a set operation (UNION, INTERSECT, EXCEPT) at the outermost level")
    group = expression.args.get("group")
    keys = list(group.expressions) if group else []
    for projection in expression.expressions:
        _check_output(projection, keys, ctx)
    having = expression.args.get("having")
    for part in [*expression.expressions, *([having] if having else [])]:
        for agg in part.find_all(exp.AggFunc):
            if type(agg) not in SAFE_AGGREGATES:
                name = function_name(agg)
                raise ScopeViolation(
                    "aggregates.function",
                    f"aggregate {name} can return one person's own value; project "
                    f"{ctx.project} may only use counts, sums, means, spreads and quantiles",
                    name=name,
                )
    scope = build_scope(expression)
    if scope is None:
        raise _shape(ctx, "a query the proxy cannot analyse")
    counted = []
    for alias, (_node, source) in scope.selected_sources.items():
        if _person_key(source, ctx, alias):
            counted.append(alias)
    for i, alias in enumerate(counted):
        count = exp.Count(
            this=exp.Distinct(expressions=[exp.column("person_id", table=alias, quoted=True)])
        )
        expression.select(exp.alias_(count, f"{HIDDEN_PREFIX}{i}", quoted=True), copy=False)
    return expression


def _shape(ctx: RuleContext, what: str) -> ScopeViolation:
    return ScopeViolation(
        "aggregates.shape",
        f"project {ctx.project} receives grouped aggregates only; {what} is not allowed",
    )


def _check_output(projection: exp.Expression, keys: list[exp.Expression], ctx: RuleContext) -> None:
    name = projection.alias_or_name
    if name.startswith("__sde"):
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
        if isinstance(parent, exp.AggFunc):
            return True
        if parent is top:
            return False
        parent = parent.parent
    return False


def _person_key(source: exp.Expression | Scope, ctx: RuleContext, alias: str) -> bool:
    """True if ``source`` is person-level (counted); raise if its persons are untraceable."""
    if isinstance(source, exp.Table):
        return is_person_table(source.name)
    if not isinstance(source, Scope):
        raise _shape(ctx, f"source {alias}")
    reads_persons = any(is_person_table(t.name) for t in source.expression.find_all(exp.Table))
    if not reads_persons:
        return False
    if _traces_to_person(source, "person_id"):
        return True
    raise ScopeViolation(
        "aggregates.no-person",
        f"the persons behind source {alias} cannot be counted; pass person_id through it "
        "unchanged (SELECT ..., person_id FROM ...)",
        name=alias,
    )


def _traces_to_person(scope: Scope, column: str) -> bool:
    select = scope.expression
    if not isinstance(select, exp.Select):
        return False
    for projection in select.expressions:
        if projection.alias_or_name != column:
            continue
        value = projection.unalias()
        if not isinstance(value, exp.Column) or not value.table:
            return False
        entry = scope.selected_sources.get(value.table)
        if entry is None:
            return False
        source = entry[1]
        if isinstance(source, exp.Table):
            return is_person_table(source.name) and value.name == "person_id"
        return _traces_to_person(source, value.name)
    return False
