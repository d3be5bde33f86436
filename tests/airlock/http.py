"""The airlock service over HTTP for tests: its app on the world's registry, tokens by name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from airlock.app import create_app
from airlock.pages import csrf_token
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


def page(c: TestClient, who: str | None, path: str) -> httpx.Response:
    """A page of the airlock as ``who`` (anonymous if None)."""
    return c.get(PREFIX + path, headers=headers(who) if who else {})


def csrf(c: TestClient, who: str) -> str:
    """The CSRF token of ``who``'s forms (the session: the caller's token)."""
    secret = c.app.state.airlock_pages.secret  # type: ignore[attr-defined]
    return csrf_token(secret, who, token(who))


def post(
    c: TestClient,
    who: str,
    path: str,
    data: dict[str, str] | None = None,
    files: list[tuple[str, tuple[str, bytes]]] | None = None,
    *,
    token: str | None = None,
) -> httpx.Response:
    """A page form posted as ``who`` with their CSRF token (or the ``token`` given)."""
    form = {"csrf": csrf(c, who) if token is None else token, **(data or {})}
    return c.post(
        PREFIX + path, data=form, files=files, headers=headers(who), follow_redirects=False
    )
