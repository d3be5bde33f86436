"""The airlock's HTTP API: the truth table over HTTP, bad input, served files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from airlock.workflow import Action, Relation, State
from tests.airlock.http import PREFIX, airlock_client, headers
from tests.airlock.truth_table import expected
from tests.airlock.world import ACTOR, TABLE, World, make_world

API = f"{PREFIX}api/requests"
FILE = "groups/tables/files/by-decile.csv"
READS = {Action.VIEW, Action.VIEW_FILE, Action.DOWNLOAD, Action.COMMENT}
STATUS = {"404": 404, "403": 403, "409": 409}


def _review(c: TestClient, rid: int, who: dict[str, str]) -> httpx.Response:
    for name in ("by-decile.csv", "figure.png"):
        c.post(
            f"{API}/{rid}/groups/tables/files/{name}/vote", json={"vote": "approve"}, headers=who
        )
    return c.post(f"{API}/{rid}/review", headers=who)


CALL: dict[Action, Callable[[TestClient, int, dict[str, str]], httpx.Response]] = {
    Action.VIEW: lambda c, r, h: c.get(f"{API}/{r}", headers=h),
    Action.VIEW_FILE: lambda c, r, h: c.get(f"{API}/{r}/{FILE}", headers=h),
    Action.ADD_FILE: lambda c, r, h: c.put(
        f"{API}/{r}/groups/tables/files/extra.csv", content=TABLE, headers=h
    ),
    Action.DELETE_FILE: lambda c, r, h: c.delete(
        f"{API}/{r}/groups/tables/files/figure.png", headers=h
    ),
    Action.EDIT_GROUP: lambda c, r, h: c.patch(
        f"{API}/{r}/groups/tables", json={"context": "new"}, headers=h
    ),
    Action.SUBMIT: lambda c, r, h: c.post(f"{API}/{r}/submit", headers=h),
    Action.WITHDRAW: lambda c, r, h: c.post(f"{API}/{r}/withdraw", headers=h),
    Action.VOTE: lambda c, r, h: c.post(
        f"{API}/{r}/{FILE}/vote", json={"vote": "approve"}, headers=h
    ),
    Action.REVIEW: _review,
    Action.COMMENT: lambda c, r, h: c.post(
        f"{API}/{r}/comments", json={"text": "a question"}, headers=h
    ),
    Action.RETURN: lambda c, r, h: c.post(
        f"{API}/{r}/return", json={"comment": "round to 5"}, headers=h
    ),
    Action.REJECT: lambda c, r, h: c.post(f"{API}/{r}/reject", json={"comment": "no"}, headers=h),
    Action.RELEASE: lambda c, r, h: c.post(f"{API}/{r}/release", headers=h),
    Action.DOWNLOAD: lambda c, r, h: c.get(f"{API}/{r}/{FILE}?download=1", headers=h),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("airlock-http"))


@pytest.fixture(scope="module")
def client(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with airlock_client(world, tmp_path_factory.mktemp("app")) as c:
        yield c


def _seen(answer: httpx.Response) -> str:
    if answer.is_success:
        return "ok"
    return str(answer.status_code)


@pytest.mark.parametrize("state", list(State))
def test_every_cell_over_http(world: World, client: TestClient, state: State) -> None:
    rid = world.reach(state)
    wrong = []
    for action in Action:
        cells = {relation: expected(action, relation, state) for relation in Relation}
        anonymous = CALL[action](client, rid, {})
        if anonymous.status_code != 401:
            wrong.append(f"{action} anonymous in {state}: {anonymous.status_code}")
        for relation in sorted(cells, key=lambda r: cells[r] == "ok"):
            target = rid
            if cells[relation] == "ok" and action not in READS:
                target = world.reach(state)
            answer = CALL[action](client, target, headers(ACTOR[relation]))
            if _seen(answer) != cells[relation]:
                wrong.append(
                    f"{action} by {relation} in {state}: {answer.status_code} {answer.text[:120]},"
                    f" expected {cells[relation]}"
                )
            if not answer.is_success:
                assert answer.json()["rule"], answer.text
        if any(cells[r] == "ok" for r in cells) and action not in READS:
            rid = world.reach(state)
    assert not wrong, "\n".join(wrong)


def test_a_request_flows_through_http(world: World, client: TestClient) -> None:
    world.reach(State.WITHDRAWN)  # closes any open request of ada's
    ada, olu, pia = headers("ada"), headers("olu"), headers("pia")
    made = client.post(API, json={"project": "htn"}, headers=ada)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    again = client.post(API, json={"project": "htn"}, headers=ada)
    assert again.status_code == 409
    assert again.json()["rule"] == "airlock.open-request"
    put = client.put(f"{API}/{rid}/groups/main/files/t.csv", content=TABLE, headers=ada)
    assert put.status_code == 201, put.text
    assert put.json()["sha256"] == hashlib.sha256(TABLE).hexdigest()
    early = client.post(f"{API}/{rid}/submit", headers=ada)
    assert early.status_code == 409
    assert early.json()["rule"] == "airlock.group-incomplete"
    client.patch(f"{API}/{rid}/groups/main", json={"context": "c", "controls": "k"}, headers=ada)
    submitted = client.post(f"{API}/{rid}/submit", headers=ada)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["state"] == "submitted"
    for who in (olu, pia):
        voted = client.post(
            f"{API}/{rid}/groups/main/files/t.csv/vote", json={"vote": "approve"}, headers=who
        )
        assert voted.status_code == 200, voted.text
        assert client.post(f"{API}/{rid}/review", headers=who).status_code == 200
    released = client.post(f"{API}/{rid}/release", headers=olu)
    assert released.json()["state"] == "released"
    got = client.get(f"{API}/{rid}/groups/main/files/t.csv?download=1", headers=ada)
    assert got.content == TABLE
    assert got.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize(
    ("name", "body", "status", "rule"),
    [
        ("big.csv", b"x" * 1_000_001, 413, "limits.too-large"),
        ("run.exe", b"MZ", 400, "airlock.file-type"),
        ("..csv", TABLE, 400, "airlock.file-name"),
        (".hidden.csv", TABLE, 400, "airlock.file-name"),
        ("%2e%2e%2fregistry.csv", TABLE, 404, None),
        ("empty.csv", b"", 400, "airlock.file-empty"),
    ],
)
def test_bad_files_are_refused_clearly(
    world: World, client: TestClient, name: str, body: bytes, status: int, rule: str | None
) -> None:
    rid = world.reach(State.DRAFT)
    answer = client.put(
        f"{API}/{rid}/groups/tables/files/{name}", content=body, headers=headers("ada")
    )
    assert answer.status_code == status, answer.text
    if rule:
        assert answer.json()["rule"] == rule


def test_unknown_ids_and_bad_bodies_are_4xx(world: World, client: TestClient) -> None:
    ada = headers("ada")
    assert client.get(f"{API}/999999", headers=ada).status_code == 404
    assert client.get(f"{API}/0", headers=ada).status_code == 422
    assert client.get(f"{API}/abc", headers=ada).status_code == 422
    rid = world.reach(State.SUBMITTED)
    bad_vote = client.post(
        f"{API}/{rid}/{FILE}/vote", json={"vote": "maybe"}, headers=headers("raj")
    )
    assert bad_vote.status_code == 422
    assert bad_vote.json()["error"] == "InvalidInput"
    missing = client.get(f"{API}/{rid}/groups/tables/files/nope.csv", headers=headers("raj"))
    assert missing.status_code == 404
    assert client.post(API, json={"project": "copd"}, headers=ada).status_code == 404


def test_a_double_review_and_a_stale_vote_are_conflicts(world: World, client: TestClient) -> None:
    rid = world.reach(State.PARTIALLY_REVIEWED)  # olu has reviewed this turn
    again = client.post(
        f"{API}/{rid}/{FILE}/vote", json={"vote": "request_changes"}, headers=headers("olu")
    )
    assert again.status_code == 409
    assert again.json()["rule"] == "airlock.already-reviewed"
    twice = client.post(f"{API}/{rid}/review", headers=headers("olu"))
    assert twice.status_code == 409


def test_files_a_browser_would_run_are_sandboxed(world: World, client: TestClient) -> None:
    world.reach(State.WITHDRAWN)
    rid = world.draft()
    page = b"<html><script>fetch('/hub/api/user')</script></html>"
    ada = headers("ada")
    assert (
        client.put(
            f"{API}/{rid}/groups/tables/files/page.html", content=page, headers=ada
        ).status_code
        == 201
    )
    world.airlock.submit("ada", rid)
    served = client.get(f"{API}/{rid}/groups/tables/files/page.html", headers=headers("raj"))
    assert served.headers["content-security-policy"].startswith("sandbox")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("attachment")


def test_a_file_changed_on_disk_is_refused(
    world: World, client: TestClient, tmp_path: Path
) -> None:
    world.reach(State.WITHDRAWN)
    rid = world.draft()
    body = b"decile,persons\n9,999\n"
    ada = headers("ada")
    put = client.put(f"{API}/{rid}/groups/tables/files/tampered.csv", content=body, headers=ada)
    world.airlock.submit("ada", rid)
    stored = world.airlock.files.path(put.json()["sha256"])
    stored.chmod(0o600)
    stored.write_bytes(b"decile,persons\n9,5\n")
    answer = client.get(f"{API}/{rid}/groups/tables/files/tampered.csv", headers=headers("raj"))
    assert answer.status_code == 503
    assert answer.json()["rule"] == "airlock.file-corrupt"


def test_the_author_gets_no_bytes_before_release(world: World, client: TestClient) -> None:
    rid = world.reach(State.DRAFT)
    early = client.get(f"{API}/{rid}/groups/tables/files/by-decile.csv", headers=headers("ada"))
    assert early.status_code == 409
    assert early.json()["rule"] == "airlock.invalid-transition"


def test_changes_through_the_api_need_the_header_not_a_cookie(
    world: World, client: TestClient
) -> None:
    rid = world.reach(State.DRAFT)
    answer = client.post(f"{API}/{rid}/withdraw")
    assert answer.status_code == 401
