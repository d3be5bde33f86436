"""The gateway as coordinator: with ``SDE_NODES`` every query goes through the node agents.

Three node agents (DuckDB, each a process of its own on loopback) serve the run's synthetic
nodes; the real gateway app, under uvicorn, is configured with their addresses and the
shared secret file, and researchers call it over HTTP with their tokens (the token-table
authenticator; the hub's own path is the workbench tests'). Answers equal the embedded
pooled ones; a node that is down is a 503 naming it, or, with ``partial=True``, an answer
whose ``attrs["sde"]["missing_nodes"]`` names it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import sde
from sde.accounts import AccountStore, add_member, create_project
from sde.client import GatewayConnection
from sde.errors import BackendUnavailable, ConfigurationError
from sde.federation.signing import create_secret
from sde.gateway import create_app
from sde.gateway.auth import TokenTable
from sde.registry import open_registry
from sde.settings import Settings, get_settings
from tests.federation.agents import RunningAgent, start_agent
from tests.federation.test_three_engines import assert_same_answer
from tests.gateway.conftest import ADMIN, ROWS_SCOPE, SECRET, TOKENS, populate, serving, token

NODES = ("lth", "elht", "umbh")
QUERIES = {
    "by-gender": "SELECT gender_concept_id, COUNT(*) AS n, AVG(year_of_birth) AS y "
    "FROM person GROUP BY 1",
    "persons-per-condition": "SELECT condition_concept_id, COUNT(DISTINCT person_id) AS p "
    "FROM condition_occurrence GROUP BY 1",
}


AGGREGATES_SCOPE = {**ROWS_SCOPE, "project": "agg", "access": "aggregates"}


@dataclass
class Federated:
    root: Path
    registry: str
    secret_file: Path
    agents: dict[str, RunningAgent]

    def settings(self, nodes: dict[str, str] | None = None) -> Settings:
        urls = nodes or {name: agent.url for name, agent in self.agents.items()}
        return Settings(
            registry_url=self.registry,
            nodes=urls,
            node_secret_file=self.secret_file,
            gateway_auth="tokens",
        )


def _copy_nodes(synth_dir: Path, to: Path) -> Path:
    """Private copies of the node files (an agent's DuckDB lock is its own)."""
    to.mkdir()
    for name in NODES:
        shutil.copyfile(synth_dir / f"{name}.duckdb", to / f"{name}.duckdb")
    return to


@pytest.fixture(scope="module")
def federated(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federated]:
    root = tmp_path_factory.mktemp("gateway-federated")
    registry = f"sqlite:///{root / 'registry.sqlite'}"
    store = AccountStore(open_registry(registry), secret=SECRET)
    populate(store)
    create_project(store, ADMIN, "agg", title="AGG", scope=AGGREGATES_SCOPE)
    add_member(store, ADMIN, "agg", "ada")
    store.engine.dispose()
    secret_file = root / "node.secret"
    create_secret(secret_file)
    data = _copy_nodes(synth_dir, root / "nodes")
    agents: dict[str, RunningAgent] = {}
    try:
        for name in NODES:
            agents[name] = start_agent(name, data / f"{name}.duckdb", "duckdb", secret_file)
        yield Federated(root, registry, secret_file, agents)
    finally:
        for agent in agents.values():
            agent.stop()


@pytest.fixture(scope="module")
def gateway(federated: Federated) -> Iterator[str]:
    app = create_app(federated.settings(), TokenTable(TOKENS))
    with serving(app) as url:
        yield url


def test_settings_read_the_nodes_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDE_NODES", '{"lth": "http://127.0.0.1:9001/"}')
    assert get_settings().nodes == {"lth": "http://127.0.0.1:9001/"}
    monkeypatch.setenv("SDE_NODES", '["lth"]')
    with pytest.raises(ConfigurationError) as info:
        get_settings()
    assert info.value.message.startswith("SDE_NODES: ")


def test_nodes_without_a_secret_file_are_refused(federated: Federated) -> None:
    settings = federated.settings().model_copy(update={"node_secret_file": None})
    with pytest.raises(ConfigurationError) as info:
        create_app(settings, TokenTable(TOKENS))
    assert info.value.rule == "settings.node-secret-file"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_a_query_through_the_gateway_equals_the_pooled_answer(
    name: str, federated: Federated, gateway: str, synth_dir: Path
) -> None:
    with GatewayConnection(gateway, "token-of-ada", "htn") as remote:
        got = remote.sql(QUERIES[name])
    pooled = sde.connect(
        synth_dir, scope=ROWS_SCOPE, registry=federated.registry, cache_dir=federated.root / "x"
    )
    try:
        expected = pooled.sql(QUERIES[name])
    finally:
        pooled.close()
    assert got.attrs["sde"]["nodes"] == list(NODES)
    assert "missing_nodes" not in got.attrs["sde"]
    assert_same_answer(got, expected, ordered=False)


def test_explain_shows_each_nodes_part_and_the_merge(gateway: str) -> None:
    answer = httpx.post(
        f"{gateway}api/projects/htn/explain",
        json={"sql": QUERIES["by-gender"]},
        headers=token("ada"),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    plans = answer.json()["plans"]
    assert set(NODES) <= set(plans)
    assert "merge" in plans


def test_a_dp_query_runs_over_the_nodes(gateway: str) -> None:
    with GatewayConnection(gateway, "token-of-dee", "dpp") as remote:
        noisy = remote.sql_dp(
            "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1", epsilon=0.1
        )
        assert noisy.attrs["dp"]["epsilon"] == 0.1
        assert remote.budget().epsilon_spent >= 0.1


def test_a_scope_refusal_is_the_pooled_refusal(gateway: str) -> None:
    answer = httpx.post(
        f"{gateway}api/projects/htn/sql",
        json={"sql": "SELECT person_source_value FROM person"},
        headers=token("ada"),
        timeout=60,
    )
    assert answer.status_code == 403
    assert answer.json()["error"] == "ScopeViolation"


def test_a_node_that_is_down_is_a_503_naming_it_unless_partial(
    federated: Federated, synth_dir: Path
) -> None:
    spare = start_agent(
        "umbh", federated.root / "nodes" / "umbh.duckdb", "duckdb", federated.secret_file
    )
    urls: dict[str, Any] = {name: agent.url for name, agent in federated.agents.items()}
    urls["umbh"] = spare.url
    app = create_app(federated.settings(urls), TokenTable(TOKENS))
    sql = QUERIES["by-gender"]
    with serving(app) as url, GatewayConnection(url, "token-of-ada", "htn") as remote:
        whole = remote.sql(sql)
        spare.kill()
        answer = httpx.post(
            f"{url}api/projects/htn/sql", json={"sql": sql}, headers=token("ada"), timeout=60
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["rule"] == "federation.node-unavailable"
        assert "umbh" in answer.json()["message"]
        with pytest.raises(BackendUnavailable) as info:
            remote.sql(sql)
        assert info.value.rule == "federation.node-unavailable"
        partial = remote.sql(sql, partial=True)
    assert partial.attrs["sde"]["missing_nodes"] == ["umbh"]
    assert partial["n"].sum() < whole["n"].sum()


def test_an_aggregates_project_sees_only_cells_every_node_may_show(
    federated: Federated, gateway: str, synth_dir: Path
) -> None:
    sql = "SELECT year_of_birth, COUNT(*) AS n FROM person GROUP BY 1"
    with GatewayConnection(gateway, "token-of-ada", "agg") as remote:
        got = remote.sql(sql)
        assert got.attrs["sdc"]["rule"] == "aggregates.threshold"
    pooled = sde.connect(
        synth_dir, scope=ROWS_SCOPE, registry=federated.registry, cache_dir=federated.root / "x"
    )
    try:
        every = pooled.sql(sql).set_index("year_of_birth")["n"]
    finally:
        pooled.close()
    assert 0 < len(got) < len(every)  # the rare birth years are withheld
    assert (got["n"] >= 10).all()
    for year, n in zip(got["year_of_birth"], got["n"], strict=True):
        assert every[year] == n  # a shown cell is the whole count, never a node's share
