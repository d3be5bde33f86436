"""The committee service over HTTP for page tests: its app on the world's registry, tokens
by name, pages and forms as a person (with their CSRF token)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx  # the client starlette's TestClient answers with
from fastapi.testclient import TestClient

from access_committee.app import create_app
from access_committee.pages.base import csrf_token
from sde.gateway.auth import TokenTable
from sde.settings import Settings
from tests.committee.world import PEOPLE, World

PREFIX = "/services/committee/"


def token(name: str) -> str:
    return f"token-of-{name}"


def headers(name: str) -> dict[str, str]:
    return {"Authorization": f"token {token(name)}"}


@contextmanager
def committee_client(world: World, data_dir: Path | None = None) -> Iterator[TestClient]:
    """The committee's app (pages and API) on ``world``'s registry and committee."""
    settings = Settings.model_validate(
        {
            "registry_url": str(world.store.engine.url),
            "committee_quorum": 3,
            "SDE_GATEWAY_PREFIX": PREFIX,
            **({"data_dir": str(data_dir)} if data_dir is not None else {}),
        }
    )
    tokens = TokenTable({token(name): name for name in PEOPLE})
    app = create_app(settings, tokens, store=world.store)
    app.state.committee = world.committee  # the world's committee: its clock, its quorum
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def page(c: TestClient, who: str | None, path: str) -> httpx.Response:
    """A page of the committee as ``who`` (anonymous if None)."""
    return c.get(PREFIX + path, headers=headers(who) if who else {})


def csrf(c: TestClient, who: str) -> str:
    """The CSRF token of ``who``'s forms (the session: the caller's token)."""
    secret = c.app.state.committee_pages.secret  # type: ignore[attr-defined]
    return csrf_token(secret, who, token(who))


def post(
    c: TestClient,
    who: str,
    path: str,
    data: dict[str, str | list[str]] | list[tuple[str, str]] | None = None,
    *,
    token: str | None = None,
) -> httpx.Response:
    """A page form posted as ``who`` with their CSRF token (or the ``token`` given)."""
    pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
    form = [("csrf", csrf(c, who) if token is None else token)]
    for name, value in pairs:
        form += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
    return c.post(
        PREFIX + path,
        content=httpx.QueryParams(form).__str__().encode(),
        headers={**headers(who), "Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
