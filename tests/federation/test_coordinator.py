"""The coordinator end to end: three DuckDB node agents as processes, answers as pooled.

The agents (``synth_agents``) serve the synthetic population's three node files; the pooled
connection reads the same files in one process, with the same registry (so the same
project key and pseudonyms). A federated answer must equal the pooled one; rows and
per-node plans stack the nodes' rows with a ``node`` column; in an aggregates project a
cell small at one node is withheld; DP answers charge the budget once; every call writes
one audit entry naming the scope version.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sde
from sde.audit import AuditLog
from sde.errors import BackendUnavailable, ResultTruncated, ScopeViolation, SDEError
from sde.federation.coordinator import FederatedConnection, connect_federated
from sde.proxy.context import Limits
from sde.registry import open_registry
from sde.scope import Scope
from tests.federation.conftest import Secret
from tests.federation.queries import AGGREGATE_QUERIES, ROWS_SCOPE

TABLES: dict[str, Any] = {
    "person": ["person_id", "gender_concept_id", "year_of_birth"],
    "condition_occurrence": ["person_id", "condition_concept_id", "condition_start_date"],
    "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
}
ROWS = {"project": "fed-rows", "access": "rows", "tables": TABLES, "expires": "2099-12-31"}
AGGREGATES = {**ROWS, "project": "fed-aggregates", "access": "aggregates"}
DP = {**ROWS, "project": "fed-dp", "access": "dp", "dp": {"epsilon": 1.0, "delta": 1e-6}}

QUERIES = [
    "SELECT COUNT(*) AS n FROM person",
    "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id",
    "SELECT year_of_birth / 10 * 10 AS decade, COUNT(*) AS n, AVG(year_of_birth) AS mean_yob "
    "FROM person GROUP BY 1 ORDER BY 1",
    "SELECT measurement_concept_id, COUNT(*) AS n, MIN(value_as_number) AS lo, "
    "MAX(value_as_number) AS hi, AVG(value_as_number) AS mean, STDDEV(value_as_number) AS sd "
    "FROM measurement GROUP BY measurement_concept_id HAVING COUNT(*) > 100 ORDER BY n DESC",
    "SELECT COUNT(DISTINCT person_id) AS persons FROM condition_occurrence "
    "WHERE condition_concept_id = 320128",
    "SELECT p.gender_concept_id, COUNT(DISTINCT p.person_id) AS n FROM person p "
    "JOIN condition_occurrence c ON c.person_id = p.person_id "
    "WHERE c.condition_concept_id = 320128 GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
]


def _connect(scope: dict[str, Any], agents: dict[str, str], secret: Secret, registry: str) -> Any:
    return connect_federated(scope, agents, secret.value, registry, user="tester")


@pytest.fixture(scope="module")
def rows_fed(synth_agents, fed_secret, fed_registry) -> Iterator[FederatedConnection]:  # type: ignore[no-untyped-def]
    with _connect(ROWS, synth_agents, fed_secret, fed_registry) as conn:
        yield conn


@pytest.fixture(scope="module")
def rows_pooled(synth_dir: Path, fed_registry: str, tmp_path_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("fed-pooled-cache")
    with sde.connect(
        synth_dir, scope=ROWS, registry=fed_registry, cache_dir=cache, user="tester"
    ) as conn:
        yield conn


def same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal as sets of rows (order aside), floats to 1e-9 relative."""
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    if len(left) == 0:
        return
    by = list(left.columns)
    a = left.sort_values(by).reset_index(drop=True)
    b = right.sort_values(by).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9, check_exact=False)


@pytest.mark.parametrize("sql", QUERIES)
def test_federated_aggregates_equal_pooled(sql: str, rows_fed: Any, rows_pooled: Any) -> None:
    got = rows_fed.sql(sql)
    expected = rows_pooled.sql(sql)
    same(got, expected)
    assert got.attrs["sde"]["federation"] == "aggregate"
    assert got.attrs["sde"]["nodes"] == ["lth", "elht", "umbh"]
    assert "missing_nodes" not in got.attrs["sde"]


@pytest.fixture(scope="module")
def shared_fed(synth_agents, fed_secret, fed_registry) -> Iterator[FederatedConnection]:  # type: ignore[no-untyped-def]
    with _connect(ROWS_SCOPE, synth_agents, fed_secret, fed_registry) as conn:
        yield conn


@pytest.fixture(scope="module")
def shared_pooled(synth_dir: Path, fed_registry: str, tmp_path_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("fed-shared-cache")
    with sde.connect(
        synth_dir, scope=ROWS_SCOPE, registry=fed_registry, cache_dir=cache, user="tester"
    ) as conn:
        yield conn


@pytest.mark.parametrize(("name", "sql"), AGGREGATE_QUERIES, ids=[n for n, _ in AGGREGATE_QUERIES])
def test_the_shared_aggregate_queries_equal_pooled(
    name: str, sql: str, shared_fed: Any, shared_pooled: Any
) -> None:
    """tests/federation/queries.py (the three-engine list), on three DuckDB agents."""
    got = shared_fed.sql(sql)
    same(got, shared_pooled.sql(sql))
    assert got.attrs["sde"]["federation"] == "aggregate"


def test_ordered_and_limited_aggregate_keeps_the_order(rows_fed: Any, rows_pooled: Any) -> None:
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
    got = rows_fed.sql(sql)
    pd.testing.assert_frame_equal(got, rows_pooled.sql(sql), check_dtype=False)


def test_rows_plan_stacks_the_nodes_rows(rows_fed: Any, rows_pooled: Any) -> None:
    sql = "SELECT person_id, year_of_birth FROM person WHERE year_of_birth < 1935"
    got = rows_fed.sql(sql)
    assert got.attrs["sde"]["federation"] == "rows"
    assert list(got.columns) == ["person_id", "year_of_birth", "node"]
    assert set(got["node"]) == {"lth", "elht", "umbh"}
    same(got.drop(columns="node"), rows_pooled.sql(sql))


def test_rows_past_the_row_cap_are_cut_and_said(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str
) -> None:
    with connect_federated(
        ROWS, synth_agents, fed_secret.value, fed_registry, user="t", limits=Limits(row_cap=50)
    ) as conn:
        with pytest.warns(ResultTruncated):
            got = conn.sql("SELECT person_id FROM person")
        small = conn.sql("SELECT COUNT(*) AS n FROM person")
    assert len(got) == 50
    assert got.attrs["sde"]["truncated"]
    assert "row cap" in got.attrs["sde"]["message"]
    assert "truncated" not in small.attrs["sde"]


def test_per_node_plan_says_why(rows_fed: Any) -> None:
    """A UNION at the top removes duplicates across nodes: it cannot be merged, so in a rows
    project each node answers it separately, with a node column, and the result says why."""
    sql = (
        "SELECT year_of_birth FROM person WHERE year_of_birth < 1935 "
        "UNION SELECT year_of_birth FROM person WHERE year_of_birth > 2005"
    )
    got = rows_fed.sql(sql)
    assert got.attrs["sde"]["federation"] == "per-node"
    assert "set operation" in got.attrs["sde"]["why"]
    assert list(got.columns) == ["year_of_birth", "node"]
    assert set(got["node"]) == {"lth", "elht", "umbh"}
    for _, rows in got.groupby("node"):  # each node's own UNION: no duplicates within it
        assert rows["year_of_birth"].is_unique


def test_window_over_every_person_equals_pooled(rows_fed: Any, rows_pooled: Any) -> None:
    sql = (
        "SELECT person_id, gender_concept_id, year_of_birth, "
        "RANK() OVER (PARTITION BY gender_concept_id ORDER BY year_of_birth) AS r "
        "FROM person WHERE year_of_birth < 1935"
    )
    got = rows_fed.sql(sql)
    assert got.attrs["sde"]["federation"] == "rows"
    same(got.drop(columns="node"), rows_pooled.sql(sql))


def test_one_connection_serves_calls_from_many_threads(
    rows_fed: Any, rows_pooled: Any, fed_registry: str
) -> None:
    """As the gateway uses it: concurrent calls on one connection, each answered right and
    audited once."""
    log = AuditLog(open_registry(fed_registry))
    before = log.count()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(rows_fed.sql, QUERIES * 2))
    for sql, got in zip(QUERIES * 2, answers, strict=True):
        same(got, rows_pooled.sql(sql))
    assert log.count() - before == 2 * len(QUERIES) * 2  # federated and pooled: one each


def test_refusals_are_the_pooled_ones(rows_fed: Any, rows_pooled: Any) -> None:
    for sql in (
        "SELECT person_source_value FROM person",
        "SELECT * FROM note",
        "DELETE FROM person",
    ):
        with pytest.raises(ScopeViolation) as fed:
            rows_fed.sql(sql)
        with pytest.raises(ScopeViolation) as pooled:
            rows_pooled.sql(sql)
        assert (fed.value.rule, fed.value.message) == (pooled.value.rule, pooled.value.message)


def test_explain_shows_each_nodes_rewrite_and_the_merge(rows_fed: Any) -> None:
    plans = rows_fed.explain("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1")
    assert set(plans) >= {"lth", "elht", "umbh", "merge", "kind"}
    assert plans["kind"] == "aggregate"
    assert "__sde_parts" in plans["merge"]
    for node in ("lth", "elht", "umbh"):
        assert '"f_k0"' in plans[node]  # the node's own rewrite of the node part


def test_sde_connect_with_nodes_is_federated(
    synth_agents: dict[str, str], fed_secret: Secret, fed_registry: str, rows_pooled: Any
) -> None:
    with sde.connect(
        nodes=synth_agents, secret_file=fed_secret.path, scope=ROWS, registry=fed_registry
    ) as conn:
        assert isinstance(conn, FederatedConnection)
        same(conn.sql(QUERIES[1]), rows_pooled.sql(QUERIES[1]))


# -- aggregates: a cell small at one node is withheld ---------------------------------------


def _per_node_counts(synth_dir: Path, registry: str, cache: Path) -> pd.DataFrame:
    """Persons per year of birth at each node, through the pooled proxy of one node file."""
    frames = []
    for node in ("lth", "elht", "umbh"):
        with sde.connect(
            synth_dir / f"{node}.duckdb", scope=ROWS, registry=registry, cache_dir=cache
        ) as conn:
            f = conn.sql(
                "SELECT year_of_birth, COUNT(DISTINCT person_id) AS n FROM person GROUP BY 1"
            )
        frames.append(f.assign(node=node))
    return (
        pd.concat(frames).pivot_table(index="year_of_birth", columns="node", values="n").fillna(0)
    )


def test_a_cell_small_at_one_node_is_withheld(
    synth_dir: Path,
    synth_agents: dict[str, str],
    fed_secret: Secret,
    fed_registry: str,
    tmp_path: Path,
) -> None:
    counts = _per_node_counts(synth_dir, fed_registry, tmp_path / "cache")
    total = counts.sum(axis=1)
    small_somewhere = ((counts > 0) & (counts < 10)).any(axis=1)
    mixed = sorted(int(y) for y in counts.index[small_somewhere & (total >= 10)])
    safe = sorted(int(y) for y in counts.index[~small_somewhere & (total >= 10)])
    assert mixed  # the population has both kinds of cell
    assert safe
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY year_of_birth"
    with _connect(AGGREGATES, synth_agents, fed_secret, fed_registry) as fed:
        got = fed.sql(sql)
    with sde.connect(
        synth_dir, scope=AGGREGATES, registry=fed_registry, cache_dir=tmp_path / "c2"
    ) as pooled:
        shown_pooled = set(pooled.sql(sql)["year_of_birth"].astype(int))
    shown = dict(zip(got["year_of_birth"].astype(int), got["n"].astype(int), strict=True))
    assert set(mixed) <= shown_pooled  # one pool: safe in total, shown
    assert not set(mixed) & set(shown)  # made partly by a small node: withheld
    assert set(shown) == set(safe)
    for year in safe:
        assert shown[year] == int(total[year])
    assert got.attrs["sdc"]["rule"] == "aggregates.threshold"
    assert not any(str(c).startswith("__sde") for c in got.columns)


# -- DP: noise once on the merged totals, one spend --------------------------------------------


def _summed(exact: pd.DataFrame) -> pd.DataFrame:
    """Exact totals summed per cell (as the DP engine merges node partials)."""
    keys = [c for c in exact.columns if str(c).startswith(("_dp_k", "_dp_b"))]
    return exact.groupby(keys, as_index=False).sum() if keys else exact.sum().to_frame().T


def test_dp_exact_totals_equal_pooled_and_one_spend(
    synth_dir: Path, synth_agents: dict[str, str], fed_secret: Secret, tmp_path: Path
) -> None:
    registry = f"sqlite:///{tmp_path / 'dp-registry.sqlite'}"
    sql = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY gender_concept_id"
    with (
        _connect(DP, synth_agents, fed_secret, registry) as fed,
        sde.connect(synth_dir, scope=DP, registry=registry, cache_dir=tmp_path / "c") as pooled,
    ):
        exact_sql = fed._dp().quote(sql, epsilon=0.2).exact_sql
        same(
            _summed(fed._run_exact(exact_sql, "postgres")),
            _summed(pooled._run_exact(exact_sql, "postgres")),
        )
        got = fed.sql_dp(sql, epsilon=0.2)
        status = fed.budget()
    assert set(got["gender_concept_id"]) == {8507, 8532}
    assert abs(got["n"].sum() - 6000 * 0.95) < 0.1 * 6000
    assert "dp" in got.attrs
    assert status.epsilon_spent == pytest.approx(0.2)
    assert status.epsilon_remaining == pytest.approx(0.8)
    assert len(status.history) == 1  # one release: charged once, not once per node


DP_QUERIES = [
    "SELECT AVG(value_as_number) AS mean FROM measurement WHERE measurement_concept_id = 3004249",
    "SELECT gender_concept_id, SUM(value_as_number) AS s FROM person p "
    "JOIN measurement m ON m.person_id = p.person_id WHERE m.measurement_concept_id = 3004249 "
    "GROUP BY gender_concept_id",
    "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY value_as_number) AS median "
    "FROM measurement WHERE measurement_concept_id = 3004249",
]


@pytest.mark.parametrize("sql", DP_QUERIES)
def test_dp_exact_runs_equal_pooled(
    sql: str, synth_dir: Path, synth_agents: dict[str, str], fed_secret: Secret, tmp_path: Path
) -> None:
    """Whatever exact SQL the DP engine runs (totals, per-cell sums, a histogram for a
    quantile), the nodes' totals summed per cell are the pooled ones."""
    registry = f"sqlite:///{tmp_path / 'dp-registry.sqlite'}"
    runs: list[tuple[str, pd.DataFrame]] = []
    with (
        _connect(DP, synth_agents, fed_secret, registry) as fed,
        sde.connect(synth_dir, scope=DP, registry=registry, cache_dir=tmp_path / "c") as pooled,
    ):
        run = fed._run_exact

        def spy(exact_sql: str, dialect: str | None) -> pd.DataFrame:
            frame = run(exact_sql, dialect)
            runs.append((exact_sql, frame))
            return frame

        fed._run_exact = spy  # type: ignore[method-assign]
        fed.sql_dp(sql, epsilon=0.1)
        assert len(runs) == 1
        exact_sql, frame = runs[0]
        same(_summed(frame), _summed(pooled._run_exact(exact_sql, "postgres")))
        assert fed.budget().epsilon_spent == pytest.approx(0.1)


# -- audit: one entry per call, naming the scope version -------------------------------------


def test_every_call_writes_one_audit_entry(
    synth_agents: dict[str, str], fed_secret: Secret, tmp_path: Path
) -> None:
    registry = f"sqlite:///{tmp_path / 'audit-registry.sqlite'}"
    log = AuditLog(open_registry(registry))
    version = Scope.load(DP).version
    down = {**synth_agents, "umbh": "http://127.0.0.1:9/"}
    calls = [
        ("sql", "refused", lambda c: c.sql("SELECT COUNT(*) FROM person")),  # dp-only
        ("sql_dp", "ok", lambda c: c.sql_dp("SELECT COUNT(*) AS n FROM person", epsilon=0.1)),
        ("sql_dp", "refused", lambda c: c.sql_dp("SELECT note_text FROM note", epsilon=0.1)),
        ("budget", "ok", lambda c: c.budget()),
        ("explain", "ok", lambda c: c.explain("SELECT COUNT(*) AS n FROM person")),
    ]
    with _connect(DP, synth_agents, fed_secret, registry) as conn:
        for action, outcome, call in calls:
            before = log.count()
            if outcome == "refused":
                with pytest.raises(SDEError):
                    call(conn)
            else:
                call(conn)
            entries = log.entries("fed-dp")
            assert log.count() == before + 1
            assert (entries[-1].action, entries[-1].outcome) == (action, outcome)
            assert entries[-1].scope_version == version
    with _connect(ROWS, down, fed_secret, registry) as conn:
        before = log.count()
        with pytest.raises(BackendUnavailable):
            conn.sql("SELECT COUNT(*) AS n FROM person")
        conn.sql("SELECT COUNT(*) AS n FROM person", partial=True)
        assert log.count() == before + 2
        failed, partial = log.entries("fed-rows")[-2:]
    assert (failed.outcome, failed.rule) == ("error", "federation.node-unavailable")
    assert "umbh" in (failed.detail or "")
    assert partial.outcome == "ok"
    assert "umbh" in (partial.detail or "")
    assert log.verify().ok
