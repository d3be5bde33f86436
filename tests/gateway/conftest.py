"""A registry of people and projects, and the gateway over the synthetic nodes.

People and projects are made through the account services (never by writing rows); the
gateway is the real app with the token-table authenticator (the scripts' and tests' path:
``SDE_GATEWAY_AUTH=tokens``); ``test_hub_oauth.py`` checks the hub's own path against a
real JupyterHub. One gateway serves the whole run: tests that change a project's status
use projects of their own.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sde.accounts import (
    AccountStore,
    add_member,
    change_status,
    create_project,
    create_user,
    record_accreditation,
    record_daa,
)
from sde.gateway import create_app
from sde.gateway.auth import TokenTable
from sde.registry import open_registry
from sde.settings import Settings

SECRET = "a test secret of at least thirty-two characters"  # noqa: S105
ADMIN = "gateway-tests"
NEXT_YEAR = dt.date.today() + dt.timedelta(days=365)

ROWS_SCOPE: dict[str, Any] = {
    "project": "htn",
    "access": "rows",
    "tables": {
        "person": ["person_id", "gender_concept_id", "year_of_birth"],
        "condition_occurrence": "*",
        "measurement": ["person_id", "measurement_concept_id", "value_as_number"],
        "concept": "*",
    },
    "expires": "2099-12-31",
}
DP_SCOPE: dict[str, Any] = {
    "project": "dpp",
    "access": "dp",
    "tables": {"person": ["person_id", "gender_concept_id", "year_of_birth"]},
    "dp": {"epsilon": 1.0, "delta": 1e-6},
    "expires": "2099-12-31",
}

#: name: (roles, accredited, signed the DAA, projects)
PEOPLE: dict[str, tuple[tuple[str, ...], bool, bool, tuple[str, ...]]] = {
    "ada": (("researcher",), True, True, ("htn",)),
    "bob": (("researcher",), True, True, ("htn", "ver")),
    "dee": (("researcher",), True, True, ("dpp",)),
    "sue": (("researcher",), True, True, ("sus", "rev", "old")),
    "nim": (("researcher",), True, True, ()),
    "una": (("researcher",), False, True, ("htn",)),
    "nod": (("researcher",), True, False, ("htn",)),
}
#: project: (scope, status action or None)
PROJECTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "htn": (ROWS_SCOPE, None),
    "dpp": (DP_SCOPE, None),
    "sus": ({**ROWS_SCOPE, "project": "sus"}, "suspend"),
    "rev": ({**ROWS_SCOPE, "project": "rev"}, "revoke"),
    "old": ({**ROWS_SCOPE, "project": "old", "expires": "2021-01-01"}, None),
    "ver": ({**ROWS_SCOPE, "project": "ver"}, None),  # gets a new version, then suspended
}
TOKENS = {f"token-of-{name}": name for name in PEOPLE}


def token(name: str) -> dict[str, str]:
    """The ``Authorization`` header of ``name``."""
    return {"Authorization": f"token token-of-{name}"}


def populate(store: AccountStore) -> None:
    for slug, (scope, _) in PROJECTS.items():
        create_project(store, ADMIN, slug, title=slug.upper(), scope=scope)
    for name, (roles, accredited, daa, projects) in PEOPLE.items():
        create_user(
            store,
            ADMIN,
            name,
            display_name=name.title(),
            email=f"{name}@example.nhs.uk",
            organisation="Lancaster University",
            roles=roles,
        )
        if accredited:
            record_accreditation(store, ADMIN, name, NEXT_YEAR, "ONS-SRS 2026/9")
        if daa:
            record_daa(store, ADMIN, name, "v3")
        for slug in projects:
            add_member(store, ADMIN, slug, name)
    for slug, (_, action) in PROJECTS.items():
        if action:
            change_status(store, ADMIN, slug, action, "the tests say so")


@dataclass
class World:
    registry: str
    store: AccountStore
    data: Path
    settings: Settings
    app: FastAPI
    client: TestClient


@pytest.fixture(scope="session")
def world(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gateway")
    registry = f"sqlite:///{root / 'registry.sqlite'}"
    store = AccountStore(open_registry(registry), secret=SECRET)
    populate(store)
    settings = Settings(
        data_dir=str(synth_dir),
        registry_url=registry,
        extract_cache_dir=root / "cache",
        gateway_auth="tokens",
    )
    app = create_app(settings, TokenTable(TOKENS), store=store)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(registry, store, synth_dir, settings, app, client)
    store.engine.dispose()


@pytest.fixture
def api(world: World) -> TestClient:
    return world.client


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_gateway(world: World) -> Iterator[str]:
    """The same app under uvicorn on a loopback port; its base URL."""
    with serving(world.app) as url:
        yield url
