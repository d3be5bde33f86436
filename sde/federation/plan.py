"""The split: a researcher's query as a node part and a merge part (docs/federation.md).

The coordinator calls :func:`plan_query` after the pooled pipeline accepted the query,
so every refusal a single pooled node gives comes first and reads the same. The query is
read the proxy's way (parse, then the rules up to ``columns.qualify``) and split:

- ``aggregate``: the outermost SELECT aggregates and every aggregate decomposes into
  per-node partials (COUNT, SUM, AVG as SUM and COUNT, MIN, MAX, COUNT(DISTINCT
  person_id), variances and standard deviations from counts, means and population
  variances). Each node runs ``SELECT <keys> AS f_k0.., <partials> AS f_a0.. FROM ...
  GROUP BY <keys>``; the merge re-aggregates per key, then evaluates the researcher's
  outputs, HAVING, windows, DISTINCT, ORDER BY and LIMIT over the merged groups.
- ``rows``: record-level rows from every node, ordered and limited once more after
  stacking; the result gains a ``node`` column.
- ``per-node``: what cannot be merged, in a ``rows`` project only: the whole query runs
  at each node and the results are stacked with a ``node`` column; ``why`` says which
  part prevented a merge.

Everything below the outermost SELECT runs at each node, so it must be node-local
(:mod:`sde.federation.locality`). Otherwise the query is refused with
``federation.not-decomposable`` naming the part.

>>> from sde.scope import Scope
>>> scope = Scope.from_dict({"project": "demo", "access": "rows",
...                          "tables": {"person": ["person_id", "gender_concept_id"]}})
>>> plan = plan_query("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1",
...                   RuleContext(scope))
>>> plan.kind, plan.columns
('aggregate', ('gender_concept_id', 'n'))
>>> print(plan.node_sql.replace(" FROM", "\\nFROM"))
SELECT "person"."gender_concept_id" AS "f_k0", COUNT(*) AS "f_a0"
FROM "person" AS "person" GROUP BY "person"."gender_concept_id"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from sde.errors import ScopeViolation, SDEError
from sde.federation import merge as build
from sde.federation import windows
from sde.federation.decompose import Decomposition, NotDecomposable, decompose
from sde.federation.locality import NotLocal, per_person
from sde.federation.locality import check as check_local
from sde.proxy.context import RuleContext
from sde.proxy.parse import parse
from sde.proxy.rules import RULES, columns, totality

#: The kinds of plan.
KINDS = ("aggregate", "rows", "per-node")

#: The column of a stacked result naming each row's node (rows and per-node plans).
NODE = "node"


@dataclass(frozen=True)
class FederatedPlan:
    """A query split into what every node runs and what the coordinator merges."""

    kind: str
    #: The node part, in the researcher's dialect (each node's proxy runs it).
    node_sql: str
    dialect: str
    #: The merge part: DuckDB SQL over ``__sde_parts`` (the node parts stacked, plus
    #: ``__sde_node``); named parameter ``$threshold`` when ``persons`` > 0.
    merge_sql: str
    #: The researcher's output names, in order (``node`` last for rows and per-node).
    columns: tuple[str, ...]
    #: The node part's columns in order (``f_k..``, ``f_a..``; positional otherwise).
    part_columns: tuple[str, ...]
    #: DuckDB type of each node-part column, ``""`` when unknown.
    part_types: tuple[str, ...]
    #: Group keys (``f_k0 ..``) of an aggregate part.
    keys: int = 0
    #: What each partial ``f_a<i>`` is: count, sum, min, max, mean, var_pop, count_persons.
    partials: tuple[str, ...] = ()
    #: Hidden person counts (``__sde_persons_<i>``) each node adds, then ``__sde_small``.
    persons: int = 0
    #: The project's threshold the merge applies when ``persons`` > 0.
    threshold: int | None = None
    #: Why the plan is per-node (empty otherwise).
    why: str = ""

    def describe(self) -> dict[str, Any]:
        """What ``explain`` shows: the node part, the merge part and why."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "node": self.node_sql,
            "merge": self.merge_sql,
            "columns": list(self.columns),
        }
        if self.kind == "aggregate":
            out["keys"] = self.keys
            out["partials"] = list(self.partials)
            if self.persons:
                out["suppression"] = (
                    f"groups any node marks small, or with fewer than {self.threshold} "
                    "persons in all, are dropped before everything else"
                )
        if self.why:
            out["why"] = self.why
        return out


def plan_query(sql: str, ctx: RuleContext) -> FederatedPlan:
    """Split ``sql`` for ``ctx``'s project; a refusal names the part that cannot be split.

    Anything unexpected while planning is a refusal (fail closed), never a crash.
    """
    try:
        return _plan(sql, ctx)
    except SDEError:
        raise
    except RecursionError:
        raise ScopeViolation("limits.depth", "the query is nested too deeply") from None
    except Exception:
        raise ScopeViolation(
            "federation.unplanned",
            "the coordinator could not split this query into node and merge parts; simplify it",
        ) from None


def _plan(sql: str, ctx: RuleContext) -> FederatedPlan:
    tree = qualified(sql, ctx)
    select = tree if isinstance(tree, exp.Select) else None
    try:
        if select is not None and _aggregates(select):
            return _aggregate_plan(select, ctx)
        return _rows_plan(tree, ctx)
    except (NotDecomposable, NotLocal) as err:
        reason = err.reason
    if ctx.scope.access != "rows":
        raise ScopeViolation("federation.not-decomposable", _sentence(reason), part=reason)
    return _per_node(sql, tree, ctx, reason)


def qualified(sql: str, ctx: RuleContext) -> exp.Expression:
    """``sql`` parsed and run through the proxy's rules up to ``columns.qualify``, then
    (aggregates projects) in the total form of ``aggregates.not-total``: the merge runs the
    researcher's expressions too, and none may fail on any data there either."""
    tree = parse(sql, ctx)
    for rule in RULES:
        tree = rule(tree, ctx)
        if rule is columns.qualify:
            return totality.check(tree, ctx)
    raise AssertionError("columns.qualify is not in RULES")  # pragma: no cover


def _sentence(reason: str) -> str:
    return f"this query cannot be answered across nodes: {reason}"


def _aggregates(select: exp.Select) -> bool:
    """True when the outermost SELECT groups or aggregates (its own aggregates only)."""
    if select.args.get("group") is not None:
        return True
    for part in [*select.expressions, select.args.get("having")]:
        if part is None:
            continue
        for node in part.find_all(exp.AggFunc):
            if node.find_ancestor(exp.Query) is select and not _window_function(node):
                return True
    return False


def _window_function(node: exp.Expression) -> bool:
    return isinstance(node.parent, exp.Window) and node.arg_key == "this"


# -- aggregate plans ----------------------------------------------------------------------


def _aggregate_plan(select: exp.Select, ctx: RuleContext) -> FederatedPlan:
    typed = _typed(select, ctx)
    if not isinstance(typed, exp.Select):
        raise NotDecomposable("the outermost query is not one SELECT")
    check_local(typed)
    split = decompose(typed)
    node = _node_part(typed, split)
    node_sql = node.sql(dialect=ctx.dialect, identify=True)
    persons = _hidden_counts(node_sql, ctx)
    merge = build.aggregate(split, ctx.dialect, persons=persons)
    return FederatedPlan(
        kind="aggregate",
        node_sql=node_sql,
        dialect=ctx.dialect,
        merge_sql=merge,
        columns=tuple(split.columns),
        part_columns=tuple(split.part_columns),
        part_types=tuple(split.part_types),
        keys=len(split.keys),
        partials=tuple(p.kind for p in split.partials),
        persons=persons,
        threshold=ctx.scope.threshold if persons else None,
    )


def _typed(tree: exp.Expression, ctx: RuleContext) -> exp.Expression:
    return annotate_types(tree.copy(), schema=ctx.schema, dialect=ctx.dialect)


def _node_part(select: exp.Expression, split: Decomposition) -> exp.Select:
    """``SELECT keys AS f_k.., partials AS f_a.. FROM ... WHERE ... GROUP BY keys``."""
    outputs = [
        *(exp.alias_(k.copy(), f"f_k{i}", quoted=True) for i, k in enumerate(split.keys)),
        *(
            exp.alias_(p.expression.copy(), f"f_a{i}", quoted=True)
            for i, p in enumerate(split.partials)
        ),
    ]
    node = exp.Select(expressions=outputs)
    for arg in ("with_", "from_", "joins", "laterals", "where"):
        value = select.args.get(arg)
        if value:
            node.set(
                arg,
                value.copy() if isinstance(value, exp.Expression) else [v.copy() for v in value],
            )
    if split.keys:
        node.set("group", exp.Group(expressions=[k.copy() for k in split.keys]))
    return node


def _hidden_counts(node_sql: str, ctx: RuleContext) -> int:
    """How many ``__sde_persons_<i>`` each node's proxy adds to the node part (aggregates
    projects): the rules up to the aggregates rule run on its text, as the node runs them."""
    if ctx.scope.access != "aggregates" or not ctx.enforce_access:
        return 0
    tree = parse(node_sql, ctx)
    for rule in RULES:
        tree = rule(tree, ctx)
        if rule.__module__.endswith(".aggregates"):
            break
    if not isinstance(tree, exp.Select):
        return 0
    return sum(p.alias_or_name.startswith("__sde_persons_") for p in tree.expressions)


# -- rows and per-node plans ----------------------------------------------------------------


def _rows_plan(tree: exp.Expression, ctx: RuleContext) -> FederatedPlan:
    if ctx.scope.access != "rows":
        raise NotDecomposable("record-level rows are only for rows projects")
    if not isinstance(tree, exp.Select):
        raise NotDecomposable("a set operation at the outermost level combines the nodes' rows")
    check_local(tree)
    _check_distinct(tree)
    if _windows_across_persons(tree):
        typed = _typed(tree, ctx)
        if not isinstance(typed, exp.Select):
            raise NotDecomposable("the outermost query is not one SELECT")
        node, merge, names = windows.split(typed, ctx.dialect)
    else:
        node, merge, names = build.rows(tree, ctx.dialect)
    return FederatedPlan(
        kind="rows",
        node_sql=node.sql(dialect=ctx.dialect, identify=True),
        dialect=ctx.dialect,
        merge_sql=merge,
        columns=(*names, NODE),
        part_columns=tuple(node.named_selects),
        part_types=tuple("" for _ in node.named_selects),
    )


def _check_distinct(select: exp.Select) -> None:
    """DISTINCT at the outermost SELECT stays within a node only when it separates persons
    (a person column among its outputs or ON keys)."""
    distinct = select.args.get("distinct")
    if isinstance(distinct, exp.Distinct):
        on = distinct.args.get("on")
        keys = (on.expressions if isinstance(on, exp.Tuple) else [on]) if on else None
        if not per_person(select, keys or [p.unalias() for p in select.expressions]):
            raise NotDecomposable(
                "DISTINCT at the outermost level removes duplicates across nodes (keep "
                "person_id among its outputs to merge the rows)"
            )


def _windows_across_persons(select: exp.Select) -> bool:
    """True when a window function of the outermost SELECT is not partitioned by person:
    then it runs in the merge, over every node's rows (:mod:`sde.federation.windows`)."""
    return any(
        not per_person(select, list(w.args.get("partition_by") or []))
        for w in windows.across(select)
    )


def _per_node(sql: str, tree: exp.Expression, ctx: RuleContext, why: str) -> FederatedPlan:
    names = tree.named_selects if isinstance(tree, exp.Query) else []
    return FederatedPlan(
        kind="per-node",
        node_sql=tree.sql(dialect=ctx.dialect, identify=True),
        dialect=ctx.dialect,
        merge_sql=build.stacked(len(names)),
        columns=(*names, NODE),
        part_columns=tuple(names),
        part_types=tuple("" for _ in names),
        why=f"each node answers separately: {why}",
    )


__all__ = ["KINDS", "NODE", "FederatedPlan", "RuleContext", "plan_query", "qualified"]
