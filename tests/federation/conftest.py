"""Fixtures of the coordinator tests: node agents as real processes, started once per run.

- ``fed_secret``: a secret file (mode 0600) shared by the coordinator and every agent;
- ``synth_agents``: three DuckDB agents (``lth``, ``elht``, ``umbh``) over ``synth_dir``,
  name -> base URL;
- ``fed_registry``: the registry both the pooled and the federated connections of the
  synthetic population use (so a project has one key: the same pseudonyms either way);
- ``sentinel_agents``: two agents over the proxy tests' sentinel nodes (``lth``, ``elht``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sde.federation.signing import create_secret


@dataclass(frozen=True)
class Secret:
    path: Path
    value: bytes


@pytest.fixture(scope="session")
def fed_secret(tmp_path_factory: pytest.TempPathFactory) -> Secret:
    path = tmp_path_factory.mktemp("fed-secret") / "federation.secret"
    return Secret(path, create_secret(path))


def _agents(folder: Path, names: tuple[str, ...], secret: Secret) -> Iterator[dict[str, str]]:
    from tests.federation.agents import start_agent  # the node agent's own test helper

    agents = []
    try:
        for name in names:
            agents.append(start_agent(name, str(folder / f"{name}.duckdb"), "duckdb", secret.path))
        yield {name: agent.url for name, agent in zip(names, agents, strict=True)}
    finally:
        for agent in agents:
            agent.stop()


@pytest.fixture(scope="session")
def synth_agents(synth_dir: Path, fed_secret: Secret) -> Iterator[dict[str, str]]:
    yield from _agents(synth_dir, ("lth", "elht", "umbh"), fed_secret)


@pytest.fixture(scope="session")
def fed_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('fed-registry') / 'registry.sqlite'}"


@pytest.fixture(scope="session")
def sentinel_agents(sentinel_nodes, fed_secret: Secret) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    yield from _agents(sentinel_nodes.folder, ("lth", "elht"), fed_secret)
