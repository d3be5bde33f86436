"""Three node agents on three engines answer as one pooled database would.

Once per module: the run's synthetic population (``synth_dir``, 6,000 persons over
``lth``, ``elht`` and ``umbh``) is served by three node agents, each a separate process on
loopback: ``lth`` on DuckDB (its own file), ``elht`` on PostgreSQL (the run's server,
schema ``elht``) and ``umbh`` on Spark (a parquet warehouse the agent opens with its own
local Spark). For every aggregate query of :mod:`tests.federation.queries` the federated
answer (``sde.connect(nodes=...)``) equals the pooled one (``sde.connect(synth_dir)``,
all three nodes in one DuckDB): integers exactly, floats to a relative 1e-9.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlglot

import sde
from sde.backends.load import load_node
from sde.backends.postgresql import PostgresBackend
from sde.backends.spark import SparkBackend
from sde.federation.signing import create_secret
from tests.federation.agents import RunningAgent, start_agent
from tests.federation.queries import AGGREGATE_QUERIES, ROWS_SCOPE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sde.backends.pg_local import LocalPostgres

#: Relative tolerance of floating-point answers (a different order of summation).
RTOL = 1e-9
QUERIES = dict(AGGREGATE_QUERIES)


@dataclass
class Federation:
    """The three agents, the shared secret and the registry both connections use."""

    agents: dict[str, RunningAgent]
    secret_file: Path
    registry: str

    @property
    def urls(self) -> dict[str, str]:
        return {name: agent.url for name, agent in self.agents.items()}


def _postgres_node(synth_dir: Path, pg_server: LocalPostgres) -> str:
    """``elht`` loaded into its own database (schema ``elht``); the database's URL."""
    dsn = pg_server.create_database("federation_elht")
    backend = PostgresBackend(dsn, schema="elht")
    try:
        load_node(synth_dir / "elht.duckdb", backend, progress=False)
    finally:
        backend.close()
    return dsn


def _spark_node(synth_dir: Path, spark: SparkSession, root: Path) -> Path:
    """``umbh`` written as a parquet warehouse; its folder."""
    warehouse = root / "warehouse"
    backend = SparkBackend(warehouse, "umbh", session=spark, create=True)
    load_node(synth_dir / "umbh.duckdb", backend, progress=False)
    return warehouse


@pytest.fixture(scope="module")
def federation(
    synth_dir: Path,
    pg_server: LocalPostgres,
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Federation]:
    root = tmp_path_factory.mktemp("three-engines")
    secret_file = root / "node.secret"
    create_secret(secret_file)
    duck = root / "duckdb" / "lth.duckdb"  # a private copy: no lock shared with other tests
    duck.parent.mkdir()
    shutil.copyfile(synth_dir / "lth.duckdb", duck)
    dsn = _postgres_node(synth_dir, pg_server)
    warehouse = _spark_node(synth_dir, spark, root)
    agents: dict[str, RunningAgent] = {}
    try:
        agents["lth"] = start_agent("lth", str(duck), "duckdb", secret_file)
        agents["elht"] = start_agent("elht", dsn, "postgresql", secret_file, schema="elht")
        agents["umbh"] = start_agent("umbh", str(warehouse), "spark", secret_file)
        yield Federation(agents, secret_file, f"sqlite:///{root / 'registry.sqlite'}")
    finally:
        for agent in agents.values():
            agent.stop()


@pytest.fixture(scope="module")
def pooled(
    synth_dir: Path, federation: Federation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    conn = sde.connect(
        synth_dir,
        scope=ROWS_SCOPE,
        registry=federation.registry,
        cache_dir=tmp_path_factory.mktemp("pooled-extracts"),
        user="pooled",
    )
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def federated(federation: Federation) -> Iterator[Any]:
    conn = sde.connect(
        nodes=federation.urls,
        secret_file=federation.secret_file,
        scope=ROWS_SCOPE,
        registry=federation.registry,
        user="federated",
        timeout_s=300,
    )
    yield conn
    conn.close()


def test_each_node_runs_on_its_own_engine_in_its_own_process(federation: Federation) -> None:
    pids = {agent.pid for agent in federation.agents.values()}
    assert len(pids) == 3
    for agent in federation.agents.values():
        assert agent.process.poll() is None, agent.name
        assert httpx.get(f"{agent.url}/healthz").json() == {"status": "ok", "node": agent.name}


def test_there_are_at_least_forty_queries() -> None:
    assert len(QUERIES) == len(AGGREGATE_QUERIES) >= 40


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_federated_answer_equals_the_pooled_one(name: str, pooled: Any, federated: Any) -> None:
    sql = QUERIES[name]
    expected = pooled.sql(sql)
    got = federated.sql(sql)
    assert got.attrs["sde"]["nodes"] == ["lth", "elht", "umbh"]
    ordered = sqlglot.parse_one(sql, read="postgres").args.get("order") is not None
    assert_same_answer(got, expected, ordered=ordered)


def assert_same_answer(got: pd.DataFrame, expected: pd.DataFrame, *, ordered: bool) -> None:
    """The same columns and rows; integers exactly, floats to :data:`RTOL` (rows in the
    query's order when it has ORDER BY, else sorted)."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected), (got, expected)
    if not ordered:
        got, expected = _sorted(got), _sorted(expected)
    for column in expected.columns:
        _assert_same_column(column, got[column], expected[column])


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [str(c) for c in frame.columns]
    shown = frame.copy()
    shown.columns = keys
    return shown.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)


def _assert_same_column(name: Any, got: pd.Series, expected: pd.Series) -> None:
    got = got.reset_index(drop=True)
    expected = expected.reset_index(drop=True)
    missing = expected.isna().to_numpy()
    assert (got.isna().to_numpy() == missing).all(), f"{name}: NULLs differ"
    if pd.api.types.is_float_dtype(expected) or pd.api.types.is_float_dtype(got):
        a = got[~missing].astype("float64").to_numpy()
        b = expected[~missing].astype("float64").to_numpy()
        assert np.allclose(a, b, rtol=RTOL, atol=0.0), f"{name}: {a} != {b}"
    else:
        a_list = got[~missing].tolist()
        b_list = expected[~missing].tolist()
        assert a_list == b_list, f"{name}: {a_list} != {b_list}"


def test_through_the_gateway_with_a_token_the_answer_is_the_pooled_one(
    federation: Federation, synth_dir: Path, tmp_path: Path
) -> None:
    """The gateway (``SDE_NODES`` = the three agents) answers a researcher's HTTP query with
    their token as the pooled database does."""
    from sde.accounts import AccountStore
    from sde.gateway import create_app
    from sde.gateway.auth import TokenTable
    from sde.registry import open_registry
    from sde.settings import Settings
    from tests.gateway.conftest import ROWS_SCOPE as GATEWAY_SCOPE
    from tests.gateway.conftest import SECRET, TOKENS, populate, serving, token

    registry = f"sqlite:///{tmp_path / 'accounts.sqlite'}"
    store = AccountStore(open_registry(registry), secret=SECRET)
    populate(store)
    store.engine.dispose()
    settings = Settings(
        registry_url=registry,
        nodes=federation.urls,
        node_secret_file=federation.secret_file,
        gateway_auth="tokens",
        timeout_s=300,
    )
    sql = QUERIES["avg-sbp-by-gender"]
    with serving(create_app(settings, TokenTable(TOKENS))) as url:
        answer = httpx.post(
            f"{url}api/projects/htn/sql", json={"sql": sql}, headers=token("ada"), timeout=300
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["attrs"]["sde"]["nodes"] == ["lth", "elht", "umbh"]
    got = pd.DataFrame(body["data"], columns=body["columns"])
    pooled = sde.connect(synth_dir, scope=GATEWAY_SCOPE, registry=registry, cache_dir=tmp_path)
    try:
        expected = pooled.sql(sql)
    finally:
        pooled.close()
    assert_same_answer(got, expected, ordered=False)
