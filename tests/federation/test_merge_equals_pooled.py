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

import sde
from sde.connection import Connection
from sde.federation.merge import merge
from sde.federation.plan import plan_query
from sde.proxy.context import RuleContext
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
