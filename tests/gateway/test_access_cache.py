"""The gateway reuses an access decision only while the registry rows behind it are unchanged:
every change that ends a member's access is refused on the very next request."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

import sde.gateway.access
from sde.accounts import (
    AccountStore,
    add_member,
    add_version,
    change_status,
    create_project,
    create_user,
    record_accreditation,
    record_daa,
    remove_member,
    set_roles,
)
from sde.errors import AccessDenied
from sde.gateway.access import AccessChecker
from sde.registry import open_registry
from tests.gateway.conftest import ADMIN, NEXT_YEAR, ROWS_SCOPE, SECRET, World

SQL = "SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1"
_SLUGS = (f"cache{i}" for i in itertools.count())


def _project(store: AccountStore, user: str, *, expires: str = "2099-12-31") -> str:
    slug = next(_SLUGS)
    create_project(
        store,
        ADMIN,
        slug,
        title=slug,
        scope={**ROWS_SCOPE, "project": slug, "expires": expires},
    )
    add_member(store, ADMIN, slug, user)
    return slug


@pytest.fixture
def store() -> AccountStore:
    store = AccountStore(open_registry("sqlite://"), secret=SECRET)
    create_user(
        store,
        ADMIN,
        "ann",
        display_name="Ann",
        email="ann@example.nhs.uk",
        organisation="Lancaster University",
        roles=["researcher"],
    )
    record_accreditation(store, ADMIN, "ann", NEXT_YEAR)
    record_daa(store, ADMIN, "ann", "v3")
    return store


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The projects ``check_project_access`` decided afresh, in order."""
    calls: list[str] = []
    real = sde.gateway.access.check_project_access

    def check(store: AccountStore, user: str, slug: str, now: dt.datetime | None = None) -> object:
        calls.append(slug)
        return real(store, user, slug, now)

    monkeypatch.setattr(sde.gateway.access, "check_project_access", check)
    return calls


def test_an_unchanged_registry_reuses_the_decision(store: AccountStore, counted: list[str]) -> None:
    slug = _project(store, "ann")
    check = AccessChecker(store)
    first = check("ann", slug)
    assert check("ann", slug) is first
    assert counted == [slug]
    assert len(check) == 1


#: change: (what the admin does, the rule of the next request's refusal)
ENDINGS: dict[str, tuple[Callable[[AccountStore, str], object], str]] = {
    "revoked": (lambda s, p: change_status(s, ADMIN, p, "revoke", "breach"), "access.revoked"),
    "suspended": (
        lambda s, p: change_status(s, ADMIN, p, "suspend", "audit"),
        "access.suspended",
    ),
    "expired by the admin": (
        lambda s, p: change_status(s, ADMIN, p, "expire", "done"),
        "access.expired",
    ),
    "member removed": (lambda s, p: remove_member(s, ADMIN, p, "ann"), "project.unknown"),
    "accreditation lapsed": (
        lambda s, p: record_accreditation(s, ADMIN, "ann", dt.date(2020, 1, 1)),
        "access.not-accredited",
    ),
    "no longer a researcher": (
        lambda s, p: set_roles(s, ADMIN, "ann", ["output-checker"]),
        "access.not-researcher",
    ),
}


@pytest.mark.parametrize("change", ENDINGS)
def test_a_change_that_ends_access_is_refused_on_the_next_request(
    store: AccountStore, change: str
) -> None:
    slug = _project(store, "ann")
    check = AccessChecker(store)
    check("ann", slug)
    check("ann", slug)  # decided once, then reused
    act, rule = ENDINGS[change]
    act(store, slug)
    with pytest.raises(AccessDenied) as refused:
        check("ann", slug)
    assert refused.value.rule == rule
    assert len(check) == 0  # a refusal is never kept
    with pytest.raises(AccessDenied):
        check("ann", slug)


def test_a_new_version_is_seen_on_the_next_request(store: AccountStore) -> None:
    slug = _project(store, "ann")
    check = AccessChecker(store)
    assert check("ann", slug).version == 1
    add_version(store, ADMIN, slug, {**ROWS_SCOPE, "project": slug, "tables": {"person": "*"}})
    access = check("ann", slug)
    assert access.version == 2
    assert set(access.scope.tables) == {"person"}


def test_an_expiry_takes_effect_at_midnight_without_a_registry_change(
    store: AccountStore,
) -> None:
    expires = dt.date.today() + dt.timedelta(days=10)
    slug = _project(store, "ann", expires=expires.isoformat())
    check = AccessChecker(store)
    last_day = dt.datetime.combine(expires, dt.time(23, 59), tzinfo=dt.UTC)
    assert check("ann", slug, now=last_day).version == 1
    with pytest.raises(AccessDenied) as refused:
        check("ann", slug, now=last_day + dt.timedelta(minutes=2))
    assert refused.value.rule == "access.expired"


def test_a_revoked_project_is_refused_on_the_very_next_request(
    world: World, api: TestClient
) -> None:
    slug = _project(world.store, "ada")
    url = f"/api/projects/{slug}/sql"
    headers = {"Authorization": "token token-of-ada"}
    for _ in range(3):  # the decision is now kept
        assert api.post(url, json={"sql": SQL}, headers=headers).status_code == 200
    change_status(world.store, ADMIN, slug, "revoke", "the committee withdrew approval")
    answer = api.post(url, json={"sql": SQL}, headers=headers)
    assert (answer.status_code, answer.json()["rule"]) == (403, "access.revoked")


def test_the_digest_covers_every_table_the_decision_reads(store: AccountStore) -> None:
    """If ``check_project_access`` starts reading another table, the digest must read it too."""
    slug = _project(store, "ann")
    read: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        read.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        AccessChecker(store)("ann", slug)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    decided, stamped = read[len(sde.gateway.access._ROWS) :], read[: len(sde.gateway.access._ROWS)]
    assert decided  # check_project_access ran after the digest's own reads

    def tables(statements: list[str]) -> set[str]:
        return {t for s in statements for t in re.findall(r"(?:FROM|JOIN)\s+(\w+)", s, re.I)}

    assert tables(decided) <= tables(stamped)
