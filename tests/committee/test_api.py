"""The committee's HTTP API: the truth table over HTTP, a whole application, projects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from access_committee.app import create_app
from access_committee.workflow import Action, Relation, State
from sde.accounts import check_project_access
from sde.errors import AccessDenied
from sde.gateway.auth import TokenTable
from sde.settings import Settings
from tests.committee.truth_table import expected
from tests.committee.world import ACTOR, PEOPLE, World, fields, make_world

PREFIX = "/services/committee/"
API = f"{PREFIX}api"


def headers(name: str) -> dict[str, str]:
    return {"Authorization": f"token token-of-{name}"}


def _vote(c: TestClient, a: int, h: dict[str, str]) -> httpx.Response:
    c.post(f"{API}/applications/{a}/conflicts", json={"conflict": False}, headers=h)
    return c.post(f"{API}/applications/{a}/votes", json={"vote": "defer"}, headers=h)


CALL: dict[Action, Callable[[TestClient, int, dict[str, str]], httpx.Response]] = {
    Action.VIEW: lambda c, a, h: c.get(f"{API}/applications/{a}", headers=h),
    Action.EDIT: lambda c, a, h: c.patch(
        f"{API}/applications/{a}", json={"purpose": "x"}, headers=h
    ),
    Action.SUBMIT: lambda c, a, h: c.post(f"{API}/applications/{a}/submit", headers=h),
    Action.WITHDRAW: lambda c, a, h: c.post(f"{API}/applications/{a}/withdraw", headers=h),
    Action.DECLARE: lambda c, a, h: c.post(
        f"{API}/applications/{a}/conflicts", json={"conflict": False}, headers=h
    ),
    Action.VOTE: _vote,
    Action.NODE_DECISION: lambda c, a, h: c.post(
        f"{API}/applications/{a}/nodes/lth", json={"agree": True}, headers=h
    ),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("committee-http"))


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    settings = Settings(
        registry_url=str(world.store.engine.url), committee_quorum=3, SDE_GATEWAY_PREFIX=PREFIX
    )
    tokens = TokenTable({f"token-of-{name}": name for name in PEOPLE})
    with TestClient(
        create_app(settings, tokens, store=world.store), raise_server_exceptions=False
    ) as c:
        yield c


@pytest.mark.parametrize("state", list(State))
def test_every_cell_over_http(world: World, client: TestClient, state: State) -> None:
    wrong = []
    for action in Action:
        cells = {relation: expected(action, relation, state) for relation in Relation}
        app_id = world.reach(state)
        if CALL[action](client, app_id, {}).status_code != 401:
            wrong.append(f"{action} anonymous in {state} was not 401")
        for relation in sorted(cells, key=lambda r: cells[r] == "ok"):
            target = (
                world.reach(state)
                if cells[relation] == "ok" and action is not Action.VIEW
                else app_id
            )
            answer = CALL[action](client, target, headers(ACTOR[relation]))
            got = "ok" if answer.is_success else str(answer.status_code)
            if got != cells[relation]:
                wrong.append(
                    f"{action} by {relation} in {state}: {answer.status_code} {answer.text[:100]}"
                )
    assert not wrong, "\n".join(wrong)


def test_an_application_becomes_a_project_over_http(world: World, client: TestClient) -> None:
    ada = headers("ada")
    made = client.post(
        f"{API}/applications", json={"project": "http-proj", "title": "T"}, headers=ada
    )
    assert made.status_code == 201, made.text
    app_id = made.json()["id"]
    assert {p["field"] for p in made.json()["problems"]} >= {"purpose", "tables", "nodes"}
    early = client.post(f"{API}/applications/{app_id}/submit", headers=ada)
    assert early.status_code == 400
    assert early.json()["details"]["problems"]
    patch = {k: v for k, v in fields("http-proj").items() if k != "project"}
    assert (
        client.patch(f"{API}/applications/{app_id}", json=patch, headers=ada).json()["problems"]
        == []
    )
    assert client.post(f"{API}/applications/{app_id}/submit", headers=ada).status_code == 200
    for node, custodian in (("lth", "nia"), ("elht", "oli"), ("umbh", "pat")):
        answer = client.post(
            f"{API}/applications/{app_id}/nodes/{node}",
            json={"agree": True},
            headers=headers(custodian),
        )
        assert answer.status_code == 200, answer.text
    wrong_node = client.post(
        f"{API}/applications/{app_id}/nodes/elht", json={"agree": True}, headers=headers("nia")
    )
    assert wrong_node.status_code == 403
    for member in ("kim", "lee", "max"):
        client.post(
            f"{API}/applications/{app_id}/conflicts",
            json={"conflict": False},
            headers=headers(member),
        )
        last = client.post(
            f"{API}/applications/{app_id}/votes",
            json={"vote": "approve_with_conditions", "conditions": "Share code on GitHub"},
            headers=headers(member),
        )
    assert last.json()["state"] == "approved_with_conditions", last.text
    project = client.get(f"{API}/projects/http-proj", headers=ada).json()
    assert project["version"] == 1
    assert project["scope"]["nodes"] == ["lth", "elht", "umbh"]
    assert client.get(f"{API}/projects/http-proj", headers=headers("tom")).status_code == 404
    assert check_project_access(world.store, "ben", "http-proj").version == 1
    refused = client.post(
        f"{API}/projects/http-proj/revoke", json={"reason": "breach"}, headers=ada
    )
    assert refused.status_code == 403
    revoked = client.post(
        f"{API}/projects/http-proj/revoke", json={"reason": "breach"}, headers=headers("sam")
    )
    assert revoked.json()["status"] == "revoked"
    with pytest.raises(AccessDenied) as gone:
        check_project_access(world.store, "ben", "http-proj")
    assert gone.value.rule == "access.revoked"


def test_the_pi_amends_a_project(world: World, client: TestClient) -> None:
    first = world.approve(world.submitted())
    slug = first["project"]
    assert (
        client.post(f"{API}/projects/{slug}/amendments", headers=headers("ben")).status_code == 403
    )
    made = client.post(f"{API}/projects/{slug}/amendments", headers=headers("ada"))
    assert made.status_code == 201, made.text
    assert (made.json()["kind"], made.json()["project"]) == ("amendment", slug)
    assert made.json()["tables"]["person"] == ["person_id", "year_of_birth"]
    # The approved application's words come with it, to be edited rather than retyped.
    assert made.json()["lay_summary"] == "Do people in poorer areas with COPD do worse?"
    assert made.json()["ethics_ref"] == "REC 24/NW/0001"
    assert made.json()["problems"] == []


def test_bad_input_is_a_clear_4xx(world: World, client: TestClient) -> None:
    ada = headers("ada")
    unknown = client.post(f"{API}/applications", json={"colour": "blue"}, headers=ada)
    assert unknown.status_code == 422
    assert unknown.json()["error"] == "InvalidInput"
    assert client.get(f"{API}/applications/999999", headers=ada).status_code == 404
    assert client.get(f"{API}/applications/0", headers=ada).status_code == 422
    app_id = world.submitted()
    bad = client.post(
        f"{API}/applications/{app_id}/votes", json={"vote": "maybe"}, headers=headers("kim")
    )
    assert bad.status_code == 422
    cookie_only = client.post(f"{API}/applications/{app_id}/withdraw")
    assert cookie_only.status_code == 401
    huge = client.patch(
        f"{API}/applications/{app_id}",
        content=b'{"purpose": "' + b"x" * 2_000_000 + b'"}',
        headers={**ada, "content-type": "application/json"},
    )
    assert huge.status_code == 413


def test_expiry_within_thirty_days_is_warned(world: World, client: TestClient) -> None:
    import datetime as dt

    soon = (dt.date.today() + dt.timedelta(days=12)).isoformat()
    view = world.approve(world.submitted(expires=soon))
    project = client.get(f"{API}/projects/{view['project']}", headers=headers("ada")).json()
    assert project["warnings"] == [f"project {view['project']} expires in 12 days ({soon})"]


def test_the_app_has_healthz_and_openapi(client: TestClient, tmp_path: Path) -> None:
    assert client.get(f"{PREFIX}healthz").json() == {"status": "ok"}
    paths = client.get(f"{PREFIX}openapi.json").json()["paths"]
    assert f"{API}/applications/{{app_id}}/votes" in paths
