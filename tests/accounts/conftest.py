"""A registry of each kind (SQLite file, PostgreSQL database) and factories for people.

Factories reach every state through the services themselves (create, set a password,
enrol, accredit, sign), never by writing rows. Times are fixed: tests pass ``now=``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher, profiles

from sde.accounts import (
    AccountStore,
    create_user,
    enrol_totp,
    grant_custodian,
    record_accreditation,
    record_daa,
    set_password,
)
from sde.accounts.crypto import Passwords, totp_code, totp_step
from sde.registry import open_registry

SECRET = "a test secret of at least thirty-two characters"  # noqa: S105
PASSWORD = "correct horse battery staple"  # noqa: S105
#: The tests' "now": mid-step (7 s into a 30 s step), a Monday morning.
NOW = dt.datetime(2026, 3, 2, 9, 0, 7, tzinfo=dt.UTC)
NEXT_YEAR = NOW.date() + dt.timedelta(days=365)
ADMIN = "admin-tester"


def _url(pg: Any, dbname: str) -> str:
    return f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{dbname}"


@pytest.fixture(scope="session")
def pg_template(pg_server: Any) -> str:
    """A PostgreSQL database at the newest revision, copied for each test (fast)."""
    name = pg_server.create_database().rsplit("dbname=", 1)[1]
    open_registry(_url(pg_server, name)).dispose()
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    pg = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.admin_dsn, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name} TEMPLATE {template}")  # type: ignore[arg-type]
    pg.databases.append(name)
    return _url(pg, name)


#: Real argon2id, with the cheapest parameters: hashing at the default cost (0.5 s on this
#: machine) in every test would make the suite slow. One test checks the default cost.
CHEAP_PASSWORDS = Passwords(PasswordHasher.from_parameters(profiles.CHEAPEST))


@pytest.fixture
def store(registry_url: str) -> Iterator[AccountStore]:
    store = AccountStore(open_registry(registry_url), secret=SECRET, passwords=CHEAP_PASSWORDS)
    yield store
    store.engine.dispose()


@dataclass(frozen=True)
class Person:
    """A user made by :func:`make_user`, with what they log in with."""

    username: str
    password: str
    totp_secret: str

    def code(self, at: dt.datetime = NOW) -> str:
        return totp_code(self.totp_secret, totp_step(at.timestamp()))


def make_user(
    store: AccountStore,
    username: str,
    *,
    roles: tuple[str, ...] = ("researcher",),
    accredited_until: dt.date | None = NEXT_YEAR,
    daa: bool = True,
    nodes: tuple[str, ...] = (),
) -> Person:
    create_user(
        store,
        ADMIN,
        username,
        display_name=username.title(),
        email=f"{username}@example.nhs.uk",
        organisation="Lancashire Teaching Hospitals",
        roles=roles,
    )
    for node in nodes:
        grant_custodian(store, ADMIN, username, node)
    set_password(store, ADMIN, username, PASSWORD)
    enrolment = enrol_totp(store, ADMIN, username)
    if accredited_until is not None:
        record_accreditation(store, ADMIN, username, accredited_until, "ONS-SRS 2026/1")
    if daa:
        record_daa(store, ADMIN, username, "v3", signed_at=NOW - dt.timedelta(days=30))
    return Person(username, PASSWORD, enrolment.secret)
