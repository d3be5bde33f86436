"""The airlock service over HTTP for tests: its app on the world's registry, tokens by name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from airlock.app import create_app
from sde.gateway.auth import TokenTable
from sde.settings import Settings
from tests.airlock.world import PEOPLE, World

PREFIX = "/services/airlock/"


def token(name: str) -> str:
    return f"token-of-{name}"


def headers(name: str) -> dict[str, str]:
    return {"Authorization": f"token {token(name)}"}


@contextmanager
def airlock_client(world: World, root: Path) -> Iterator[TestClient]:
    settings = Settings(
        airlock_dir=world.airlock.files.root,
        registry_url=str(world.store.engine.url),
        airlock_max_file_mb=world.airlock.max_file_mb,
        SDE_GATEWAY_PREFIX=PREFIX,
    )
    tokens = TokenTable({token(name): name for name in PEOPLE})
    app = create_app(settings, tokens, store=world.store)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
