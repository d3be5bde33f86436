"""The property that matters: node parts run on each node alone, merged, equal the pooled answer.

Each query of :data:`tests.federation.queries.AGGREGATE_QUERIES` is planned, its node part
runs through the proxy on each node's own DuckDB file separately (a connection per node,
as a node agent would), and :func:`sde.federation.merge.merge` combines the three parts.
The pooled answer is the same query through one connection over all three nodes.
Integers must be equal; floats agree to a relative 1e-9.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlglot import exp

import sde
from sde.connection import Connection
from sde.errors import QueryFailed
from sde.federation.merge import merge
from sde.federation.plan import FederatedPlan, plan_query, qualified
from sde.proxy.context import RuleContext
from sde.proxy.rules import aggregates
from sde.scope import Scope
from tests.federation.queries import AGGREGATE_QUERIES, ROWS_SCOPE

NODES = ("lth", "elht", "umbh")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('merge-registry') / 'registry.sqlite'}"


@pytest.fixture(scope="module")
def pooled(synth_dir: Path, registry: str) -> Iterator[Connection]:
    conn = sde.connect(synth_dir, scope=ROWS_SCOPE, registry=registry, user="tester")
    assert isinstance(conn, Connection)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def per_node(synth_dir: Path, registry: str) -> Iterator[dict[str, Connection]]:
    conns = {}
    for name in NODES:
        conn = sde.connect(
            synth_dir / f"{name}.duckdb", scope=ROWS_SCOPE, registry=registry, user="tester"
        )
        assert isinstance(conn, Connection)
        conns[name] = conn
    yield conns
    for conn in conns.values():
        conn.close()


def federated(sql: str, nodes: dict[str, Connection]) -> pd.DataFrame:
    plan = plan_query(sql, RuleContext(Scope.load(ROWS_SCOPE)))
    assert plan.kind == "aggregate", plan.describe()
    parts = {name: conn.sql(plan.node_sql) for name, conn in nodes.items()}
    return merge(plan, parts, threshold=None)


def assert_same(got: pd.DataFrame, want: pd.DataFrame, *, ordered: bool) -> None:
    """Equal frames: names, dtypes, integers exactly, floats to a relative 1e-9; row order
    too when the query orders its rows."""
    got, want = got.copy(), want.copy()
    got.attrs, want.attrs = {}, {}
    if not ordered:
        got = got.sort_values(list(got.columns)).reset_index(drop=True)
        want = want.sort_values(list(want.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=0)
    for name in want.columns:
        if str(want[name].dtype) == "Int64":
            assert got[name].equals(want[name]), name


def test_the_query_list_is_long_enough() -> None:
    assert len(AGGREGATE_QUERIES) >= 40
    assert len({name for name, _ in AGGREGATE_QUERIES}) == len(AGGREGATE_QUERIES)


@pytest.mark.parametrize(("name", "sql"), AGGREGATE_QUERIES, ids=[n for n, _ in AGGREGATE_QUERIES])
def test_merged_node_parts_equal_the_pooled_answer(
    name: str, sql: str, pooled: Connection, per_node: dict[str, Connection]
) -> None:
    want = pooled.sql(sql)
    got = federated(sql, per_node)
    assert_same(got, want, ordered="ORDER BY" in sql.upper())


def test_a_node_with_no_rows_merges_as_pooled(
    pooled: Connection, per_node: dict[str, Connection]
) -> None:
    """A part with no rows at all (a node that holds nobody in the groups) changes nothing."""
    sql = "SELECT gender_concept_id, COUNT(*) AS n, SUM(year_of_birth) AS s FROM person GROUP BY 1"
    plan = plan_query(sql, RuleContext(Scope.load(ROWS_SCOPE)))
    parts = {name: conn.sql(plan.node_sql) for name, conn in per_node.items()}
    parts["empty"] = parts["lth"].iloc[0:0]
    assert_same(merge(plan, parts, threshold=None), pooled.sql(sql), ordered=False)


def test_global_aggregates_over_empty_parts_are_zero_and_null() -> None:
    """Every node empty (zero-row frames): COUNT is 0 and SUM, AVG, MIN NULL, as pooled."""
    sql = (
        "SELECT COUNT(*) AS n, SUM(year_of_birth) AS s, AVG(year_of_birth) AS a, "
        "MIN(year_of_birth) AS lo FROM person"
    )
    plan = plan_query(sql, RuleContext(Scope.load(ROWS_SCOPE)))
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in plan.part_columns})
    out = merge(plan, {"lth": empty, "elht": empty}, threshold=None)
    assert list(out.columns) == ["n", "s", "a", "lo"]
    assert out["n"].tolist() == [0]
    assert out[["s", "a", "lo"]].isna().all(axis=None)
    assert str(out["n"].dtype) == "Int64"


# -- aggregates projects: small groups are dropped before anything else ----------------------

AGGREGATES_SCOPE = {**ROWS_SCOPE, "project": "federation-aggregates", "access": "aggregates"}
THRESHOLD = 10  # the scope's default


def flag_small(part: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """A node's part as the merge receives it (docs/federation.md): a group with 1 to
    threshold-1 persons at the node keeps its keys, ``__sde_small`` is true and every partial
    and person count is NULL; other groups go unchanged with ``__sde_small`` false."""
    counts = [c for c in part.columns if str(c).startswith("__sde_persons_")]
    small = pd.Series(False, index=part.index)
    for name in counts:
        small |= ((part[name] >= 1) & (part[name] < threshold)).fillna(True).astype(bool)
    out = part.copy()
    for name in out.columns:
        if str(name).startswith("f_a") or name in counts:
            out[name] = out[name].mask(small)
    out["__sde_small"] = pd.array(small.to_numpy(), dtype="boolean")
    return out


def aggregates_parts(sql: str, nodes: dict[str, Connection]) -> tuple[FederatedPlan, dict]:
    """The plan and what each node's part is in an aggregates project: its node part with
    the hidden person counts its proxy adds (the aggregates rule itself, run here), computed
    on that node alone, small groups flagged and emptied."""
    ctx = RuleContext(Scope.load(AGGREGATES_SCOPE))
    plan = plan_query(sql, ctx)
    counted = aggregates.rewrite(qualified(plan.node_sql, ctx), ctx)
    # A researcher's query may not name __sde_* columns: the counts travel as hidden_* here.
    renamed = {}
    for projection in counted.expressions:
        if projection.alias.startswith("__sde_persons_"):
            renamed[f"hidden_{projection.alias}"] = projection.alias
            projection.set("alias", exp.to_identifier(f"hidden_{projection.alias}", quoted=True))
    parts = {
        name: flag_small(conn.sql(counted.sql("postgres")).rename(columns=renamed), THRESHOLD)
        for name, conn in nodes.items()
    }
    return plan, parts


def per_node_counts(sql: str, nodes: dict[str, Connection]) -> pd.DataFrame:
    """``sql`` (key, n) on each node separately, as one frame with a node column."""
    frames = [conn.sql(sql).assign(node=name) for name, conn in nodes.items()]
    return pd.concat(frames, ignore_index=True)


def shown(counts: pd.DataFrame, key: str) -> pd.DataFrame:
    """The stated rule, computed from the per-node person counts alone: a group is shown when
    every node with persons in it has at least the threshold, and so does the total."""
    rows = []
    for value, group in counts.groupby(key, dropna=False):
        persons = [int(p) for p in group["persons"] if int(p) > 0]
        if all(p >= THRESHOLD for p in persons) and sum(persons) >= THRESHOLD:
            rows.append({key: value, "n": int(group["n"].sum())})
    return pd.DataFrame(rows)


def test_a_cell_safe_in_total_but_small_at_one_node_is_dropped(
    per_node: dict[str, Connection],
) -> None:
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY year_of_birth"
    plan, parts = aggregates_parts(sql, per_node)
    assert plan.persons == 1
    assert plan.threshold == THRESHOLD
    got = merge(plan, parts, threshold=THRESHOLD)
    counts = per_node_counts(
        "SELECT year_of_birth, COUNT(*) AS n, COUNT(DISTINCT person_id) AS persons "
        "FROM person GROUP BY 1",
        per_node,
    )
    totals = counts.groupby("year_of_birth")["persons"].sum()
    small_somewhere = set(counts.loc[counts["persons"] < THRESHOLD, "year_of_birth"])
    withheld = {y for y in small_somewhere if totals[y] >= THRESHOLD}
    assert withheld, "the data must hold a group safe in total but small at one node"
    assert not withheld & set(got["year_of_birth"])
    want = shown(counts, "year_of_birth")
    assert_same(got, want.astype({"year_of_birth": "Int64", "n": "Int64"}), ordered=False)


def test_suppressed_groups_never_reach_having_windows_order_or_limit(
    per_node: dict[str, Connection],
) -> None:
    sql = (
        "SELECT year_of_birth, COUNT(*) AS n, 100.0 * COUNT(*) / SUM(COUNT(*)) OVER () AS pct "
        "FROM person GROUP BY year_of_birth HAVING COUNT(*) < 200 "
        "ORDER BY n, year_of_birth LIMIT 5"
    )
    plan, parts = aggregates_parts(sql, per_node)
    got = merge(plan, parts, threshold=THRESHOLD)
    counts = per_node_counts(
        "SELECT year_of_birth, COUNT(*) AS n, COUNT(DISTINCT person_id) AS persons "
        "FROM person GROUP BY 1",
        per_node,
    )
    kept = shown(counts, "year_of_birth")
    kept = kept[kept["n"] < 200].copy()
    kept["pct"] = 100.0 * kept["n"] / kept["n"].sum()
    want = kept.sort_values(["n", "year_of_birth"]).head(5).reset_index(drop=True)
    assert_same(got, want.astype({"year_of_birth": "Int64", "n": "Int64"}), ordered=True)


def test_a_small_global_cell_gives_no_row() -> None:
    """Hand-made parts: each node is safe alone (not flagged) but the total of persons is
    under the threshold, or one node flagged the only cell: no row, not a zero."""
    ctx = RuleContext(Scope.load(AGGREGATES_SCOPE))
    plan = plan_query("SELECT COUNT(*) AS n FROM person WHERE year_of_birth < 1925", ctx)
    assert plan.persons == 1

    def part(n: int | None, persons: int | None, small: bool) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "f_a0": pd.array([n], dtype="Int64"),
                "__sde_persons_0": pd.array([persons], dtype="Int64"),
                "__sde_small": pd.array([small], dtype="boolean"),
            }
        )

    under = {"lth": part(4, 4, False), "elht": part(3, 3, False)}
    assert merge(plan, under, threshold=THRESHOLD).empty
    flagged = {"lth": part(None, None, True), "elht": part(40, 40, False)}
    assert merge(plan, flagged, threshold=THRESHOLD).empty
    fine = {"lth": part(12, 12, False), "elht": part(0, 0, False)}
    assert merge(plan, fine, threshold=THRESHOLD)["n"].tolist() == [12]


def test_an_aggregates_merge_needs_the_threshold() -> None:
    ctx = RuleContext(Scope.load(AGGREGATES_SCOPE))
    plan = plan_query("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1", ctx)
    with pytest.raises(QueryFailed) as err:
        merge(plan, {}, threshold=None)
    assert err.value.rule == "federation.threshold"


def test_the_merge_evaluates_an_aggregates_query_in_its_total_form(
    per_node: dict[str, Connection],
) -> None:
    """The researcher's expressions run in the merge as the proxy made them total: a
    division by a zero count is NULL there, not a failure whose presence says something."""
    sql = (
        "SELECT gender_concept_id, SUM(year_of_birth) / (COUNT(*) - COUNT(year_of_birth)) AS x "
        "FROM person GROUP BY 1"
    )
    plan, parts = aggregates_parts(sql, per_node)
    assert "NULLIF" in plan.merge_sql.upper()
    got = merge(plan, parts, threshold=THRESHOLD)
    assert len(got) == 2
    assert got["x"].isna().all()
