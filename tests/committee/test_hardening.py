"""Hardening of the committee against what the red team found (tests/committee/
test_redteam_pages.py): free text held to its registry column and refused with control
characters, naming the field; audit entries a caller cannot name or lose; the status
reason checked once for the API and the pages; periods stored as the dates they name; a
never-submitted draft private whatever becomes of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from access_committee import api, forms
from access_committee.workflow import PERMISSIONS, Action, Relation, State, visible
from sde.accounts import get_project, set_roles
from sde.accounts.projects import status_reason
from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.registry.audit_log import AuditEntry
from sde.registry.committee import (
    LIST_LIMITS,
    TEXT_LIMITS,
    Application,
    NodeDecision,
    column_length,
    text_problem,
)
from sde.registry.people import User
from sde.registry.projects import Project
from tests.committee.http import PREFIX, committee_client, headers, page, post
from tests.committee.test_cohort_size import COPD, node_file
from tests.committee.world import World, fields, make_world

API = f"{PREFIX}api"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with committee_client(world) as c:
        yield c


@pytest.fixture
def pg_world(pg_server: Any, tmp_path: Path) -> World:
    dsn = psycopg.conninfo.conninfo_to_dict(pg_server.create_database())
    url = f"postgresql+psycopg://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}"
    return make_world(tmp_path, url)


def _audit(world: World) -> list[tuple[str, str, str | None, str, str | None]]:
    with world.store.read() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        return [(r.user, r.action, r.object, r.outcome, r.rule) for r in rows]


def _refused(call: Any, rule: str, field: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as refusal:
        call()
    assert (refusal.value.rule, refusal.value.details.get("field")) == (rule, field)
    return refusal.value


# -- one place for the limits -------------------------------------------------------------


def test_the_limits_fit_the_registry_columns_and_the_api_reads_them() -> None:
    assert TEXT_LIMITS["title"] == column_length(Project.title) == 300
    assert TEXT_LIMITS["project"] < column_length(Application.project)
    assert TEXT_LIMITS["project"] < column_length(Project.slug)
    assert TEXT_LIMITS["pi"] == TEXT_LIMITS["member"] == column_length(User.username)
    assert TEXT_LIMITS["ref"] == column_length(User.accreditation_ref)
    assert TEXT_LIMITS["node"] == column_length(NodeDecision.node)
    schema = api.Fields.model_json_schema()["properties"]
    for name in ("project", "title", "pi", *forms.TEXT_FIELDS):
        text = next(s for s in schema[name]["anyOf"] if s.get("type") == "string")
        assert text["maxLength"] == TEXT_LIMITS[name], name
    members = next(s for s in schema["members"]["anyOf"] if s.get("type") == "array")
    assert members["maxItems"] == LIST_LIMITS["members"]
    assert members["items"]["maxLength"] == TEXT_LIMITS["member"]
    for model, name in ((api.Conflict, "note"), (api.NodeAnswer, "reason")):
        assert model.model_json_schema()["properties"][name]["maxLength"] == TEXT_LIMITS[name]


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\ud800"])
def test_control_characters_are_refused_newlines_and_tabs_kept(bad: str) -> None:
    assert text_problem(f"a{bad}b", 10) is not None
    assert text_problem("line one\r\nline\ttwo\n", 100) is None
    assert text_problem("é 🦠 ²", 10) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "T" * 301),
        ("title", "nul\x00title"),
        ("project", "p" * 64),
        ("project", "p\x00"),
        ("pi", "a" * 65),
        ("lay_summary", "x" * 20_001),
        ("ethics_ref", "REC\x0024"),
        ("members", ["ben\x00"]),
        ("members", ["m"] * 201),
        ("nodes", ["lth\x00"]),
    ],
)
def test_clean_refuses_what_the_registry_cannot_hold_naming_the_field(
    world: World, field: str, value: object
) -> None:
    _refused(lambda: forms.clean({field: value}), f"application.{field}", field)
    _refused(
        lambda: world.committee.create("ada", {**fields("held"), field: value}),
        f"application.{field}",
        field,
    )
    assert world.committee.list_for("ada") == []
    assert ("ada", "application.create", "application:new", "refused", f"application.{field}") in (
        _audit(world)
    )


def test_text_at_the_limit_is_taken(world: World) -> None:
    app = world.committee.create("ada", fields("at-limit", title="T" * 300, purpose="a\r\nb\tc"))
    assert app["title"] == "T" * 300
    assert app["problems"] == []


def test_the_page_keeps_what_was_typed_when_a_field_is_refused(client: TestClient) -> None:
    answer = post(
        client,
        "ada",
        "applications",
        {"project": "kept", "title": "T" * 301, "purpose": "my purpose", "action": "save"},
    )
    assert answer.status_code == 400
    assert "application.title" in answer.text
    assert "my purpose" in answer.text


@pytest.mark.parametrize(
    ("who", "call", "rule", "field"),
    [
        ("kim", "declare", "committee.conflict-note", "note"),
        ("lee", "conditions", "committee.conditions", "conditions"),
        ("lee", "comment", "committee.comment", "comment"),
        ("oli", "node", "committee.node-reason", "reason"),
    ],
)
def test_review_text_is_refused_by_the_service_naming_the_field(
    world: World, who: str, call: str, rule: str, field: str
) -> None:
    app_id = world.submitted()
    world.committee.declare("lee", app_id, conflict=False)
    c = world.committee
    calls = {
        "declare": lambda: c.declare(who, app_id, conflict=True, note="my\x00brother"),
        "conditions": lambda: c.vote(who, app_id, "approve_with_conditions", conditions="c\x00"),
        "comment": lambda: c.vote(who, app_id, "approve", comment="x" * 10_001),
        "node": lambda: c.node_decision(who, app_id, "elht", agree=False, reason="n\x00o"),
    }
    _refused(calls[call], rule, field)
    assert (who, rule) in [(u, r) for u, _, _, o, r in _audit(world) if o == "refused"]


# -- periods as the dates they name ------------------------------------------------------


def test_dates_are_stored_as_yyyy_mm_dd_whichever_iso_form_was_typed(
    world: World, client: TestClient
) -> None:
    period = {"start": "2020-W01-1", "end": "20241231"}
    app = world.committee.create("ada", fields("weeks", period=period, expires="2030W011"))
    assert app["period"] == {"start": "2019-12-30", "end": "2024-12-31"}
    assert app["expires"] == "2029-12-31"
    scope = forms.compile_scope(app, agreed_nodes=app["nodes"])
    assert scope["period"] == app["period"]
    made = client.post(
        f"{API}/applications",
        json={"project": "weeks-api", "period": period},
        headers=headers("ada"),
    )
    assert made.json()["period"] == {"start": "2019-12-30", "end": "2024-12-31"}
    kept = world.committee.create("ada", fields("typo", period={"start": "31/12/2019"}))
    assert kept["period"] == {"start": "31/12/2019"}  # not a date: kept, and named
    assert any(p["field"] == "period" for p in kept["problems"])


# -- a draft stays the applicant's --------------------------------------------------------


def test_a_never_submitted_application_is_seen_as_a_draft() -> None:
    for relation in Relation:
        sees = PERMISSIONS[Action.VIEW].get(relation, frozenset())
        for state in State:
            assert visible(relation, state, submitted=False) == (State.DRAFT in sees)
            assert visible(relation, state, submitted=True) == (state in sees)
    assert visible(Relation.APPLICANT, State.WITHDRAWN, submitted=False)
    assert visible(Relation.MEMBER, State.WITHDRAWN, submitted=False)


def test_a_withdrawn_draft_stays_private_but_a_withdrawn_submission_does_not(
    world: World,
) -> None:
    draft = world.reach(State.DRAFT)
    world.committee.withdraw("ada", draft)
    submitted = world.reach(State.WITHDRAWN)
    for who in ("lee", "nia", "sam", "tom"):
        with pytest.raises(AccessDenied) as missing:
            world.committee.get(who, draft)
        assert missing.value.rule == "committee.unknown"
        shown = [a["id"] for a in world.committee.list_for(who)]
        assert draft not in shown
        if who != "tom":
            assert submitted in shown
            assert world.committee.get(who, submitted)["state"] == "withdrawn"
    assert world.committee.get("ada", draft)["state"] == "withdrawn"
    assert world.committee.get("ben", draft)["state"] == "withdrawn"


# -- audit entries nobody forges or loses -------------------------------------------------


def test_a_non_admin_user_form_is_refused_as_missing_and_audited(
    world: World, client: TestClient
) -> None:
    for name in ("tom", "nobody", "x" * 300):
        answer = post(client, "tom", f"admin/users/{name}/roles", {"role": "admin", "op": "grant"})
        assert answer.status_code == 404
    refused = [(o, r) for u, a, o, out, r in _audit(world) if u == "tom" and a == "user.roles"]
    assert refused[0] == ("user:tom", "pages.not-found")
    assert len(refused) == 3
    assert all(o is not None and len(o) <= 200 for o, _ in refused)


def test_a_status_post_names_only_our_events(world: World, client: TestClient) -> None:
    app_id = world.submitted()
    world.approve(app_id)
    slug = world.committee.get("ada", app_id)["project"]
    for who in ("tom", "sam"):
        post(client, who, f"admin/projects/{slug}/status", {"action": "approve", "reason": "x"})
    entries = [(u, a, r) for u, a, _, o, r in _audit(world) if o == "refused"]
    assert ("tom", "project.status", "committee.admin-only") in entries
    assert ("sam", "project.status", "project.invalid-action") in entries
    assert not [a for _, a, _, _, _ in _audit(world) if a == "project.approve"]


def test_the_status_reason_is_one_check_for_the_api_and_the_page(
    world: World, client: TestClient
) -> None:
    app_id = world.submitted()
    world.approve(app_id)
    slug = world.committee.get("ada", app_id)["project"]
    for reason in ("r" * 5_001, "bad\x00reason", "   "):
        with pytest.raises(InvalidInput) as refusal:
            status_reason("suspend", reason)
        rule = refusal.value.rule
        by_api = client.post(
            f"{API}/projects/{slug}/suspend", json={"reason": reason}, headers=headers("sam")
        )
        assert (by_api.status_code, by_api.json()["rule"]) == (400, rule)
        for confirm in ("", "yes"):
            form = {"action": "suspend", "reason": reason, "confirm": confirm}
            by_page = post(client, "sam", f"admin/projects/{slug}/status", form)
            assert by_page.status_code == 400
            # (a NUL anywhere in a page's form may be refused before any field: pages.form)
            assert f"[{rule}]" in by_page.text or "\x00" in reason
    assert get_project(world.store, slug).status == "active"
    assert status_reason("suspend", "r" * 5_000) == "r" * 5_000


def test_an_amendment_of_a_malformed_slug_is_a_missing_project(world: World) -> None:
    for slug in ("a" * 250, "UPPER", "nul\x00"):
        with pytest.raises(AccessDenied) as missing:
            world.committee.amend("ada", slug)
        assert missing.value.rule == "project.unknown"


# -- on PostgreSQL ------------------------------------------------------------------------


@pytest.mark.postgres
def test_nul_and_long_text_are_refusals_on_postgres(pg_world: World) -> None:
    app_id = pg_world.submitted()
    pg_world.committee.declare("lee", app_id, conflict=False)
    bad: list[tuple[str, str, dict[str, Any], str]] = [
        ("ada", "applications", {"project": "p\x00q", "title": "t"}, "application.project"),
        ("ada", "applications", {"title": "t" * 301}, "request.invalid"),
        ("kim", f"applications/{app_id}/conflicts", {"conflict": True, "note": "my\x00brother"},
         "committee.conflict-note"),
        ("oli", f"applications/{app_id}/nodes/elht", {"agree": False, "reason": "no\x00"},
         "committee.node-reason"),
        ("lee", f"applications/{app_id}/votes",
         {"vote": "approve_with_conditions", "conditions": "c\x00c"}, "committee.conditions"),
    ]  # fmt: skip
    with committee_client(pg_world) as c:
        for who, path, body, rule in bad:
            answer = c.post(f"{API}/{path}", json=body, headers=headers(who))
            assert answer.status_code in (400, 422), answer.text
            assert answer.json()["rule"] == rule
        answer = post(
            c, "ada", "applications", {"project": "p" * 70, "title": "kept", "action": "save"}
        )
        assert answer.status_code == 400
        assert "application.project" in answer.text
        for path in ("admin/projects/" + "a" * 250 + "/status", "admin/users/" + "b" * 250):
            answer = post(c, "tom", path, {"action": "suspend", "reason": "x"})
            assert answer.status_code in (403, 404, 405)
    assert pg_world.committee.get("lee", app_id)["state"] == State.UNDER_REVIEW.value


@pytest.mark.postgres
def test_a_stored_title_the_project_cannot_hold_defers_the_approval(pg_world: World) -> None:
    """An application stored before the limits (its title over 300 characters) is not
    left unapprovable by a 500 on every deciding vote: the approval defers it, saying why."""
    app_id = pg_world.submitted()
    with pg_world.store.write() as tx:
        row = tx.session.get(Application, app_id)
        assert row is not None
        row.body = json.dumps({**json.loads(row.body), "title": "T" * 400})
    view = pg_world.approve(app_id)
    assert view["state"] == State.DEFERRED.value
    assert view["conditions"].startswith("title: at most 300 characters")
    with pytest.raises(SDEError):
        pg_world.committee.submit("ada", app_id)  # the applicant must shorten it first
    pg_world.committee.update("ada", app_id, {"title": "Shorter"})
    pg_world.committee.submit("ada", app_id)
    assert pg_world.approve(app_id)["state"] == State.APPROVED.value
    slug = pg_world.committee.get("ada", app_id)["project"]
    assert get_project(pg_world.store, slug).title == "Shorter"


# -- a custodian on the committee ---------------------------------------------------------


def test_a_custodian_on_the_committee_votes_and_answers_for_their_node(world: World) -> None:
    set_roles(world.store, "tests", "nia", {"custodian", "committee"})
    app_id = world.submitted()
    view = world.committee.get("nia", app_id)
    assert view["you"] == "committee"  # sees what a member sees (the votes too) ...
    assert view["relations"] == ["committee", "custodian"]
    assert {"declare", "vote", "node_decision"} <= set(view["actions"])
    answered = world.committee.node_decision("nia", app_id, "lth", agree=True)
    assert {"node": "lth", "agree": True, "reason": ""} in answered["nodes_decided"]
    assert "votes" in answered  # ... and keeps the member's view after answering
    with pytest.raises(AccessDenied) as refusal:  # ... for their own node only
        world.committee.node_decision("nia", app_id, "elht", agree=True)
    assert refusal.value.rule == "committee.not-custodian"
    world.committee.declare("nia", app_id, conflict=False)
    assert world.committee.vote("nia", app_id, "approve")["votes"][0]["member"] == "nia"
    assert world.committee.get("lee", app_id)["relations"] == ["committee"]


# -- the cohort preview's audience (pages) ------------------------------------------------


def _preview_world(world: World, tmp_path: Path) -> Path:
    data = tmp_path / "nodes"
    data.mkdir()
    for node in ("lth", "elht", "umbh"):
        node_file(data / f"{node}.duckdb", [(p, COPD, "2020-03-01") for p in range(25)], set())
    return data


def test_the_cohort_sizes_are_for_reviewers_without_a_conflict_while_in_review(
    world: World, tmp_path: Path
) -> None:
    data = _preview_world(world, tmp_path)
    app_id = world.submitted()
    world.committee.declare("nat", app_id, conflict=True, note="my sister applies")
    with committee_client(world, data) as c:
        assert 'id="cohort-sizes"' in page(c, "lee", f"applications/{app_id}").text
        conflicted = page(c, "nat", f"applications/{app_id}").text
        assert 'id="cohort-sizes"' not in conflicted
        assert "You declared a conflict of interest" in conflicted
        custodian = page(c, "nia", f"applications/{app_id}").text
        rows = custodian[custodian.index('id="cohort-sizes"') :].split("</table>")[0]
        assert "lth" in rows
        assert "elht" not in rows
        assert "umbh" not in rows
        world.approve(app_id)
        decided = page(c, "lee", f"applications/{app_id}").text
        assert 'id="cohort-sizes"' not in decided
        assert "only while the application is in review" in decided
    with world.store.read() as s:
        shown = s.scalars(
            select(AuditEntry.user).where(AuditEntry.action == "application.cohort-preview")
        ).all()
    assert sorted(shown) == ["lee", "nia"]  # what was not shown is not counted


def test_a_custodian_on_the_committee_gets_the_node_form_on_the_page(
    world: World, client: TestClient
) -> None:
    set_roles(world.store, "tests", "nia", {"custodian", "committee"})
    app_id = world.submitted()
    text = page(client, "nia", f"applications/{app_id}").text
    assert f"applications/{app_id}/nodes/lth" in text
    assert f"applications/{app_id}/votes" in text
    assert (
        post(client, "nia", f"applications/{app_id}/nodes/lth", {"agree-lth": "yes"}).status_code
        == 303
    )
