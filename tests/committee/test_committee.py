"""The committee's workflow: the truth table, decisions, provisioning, amendments."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from access_committee.applications import Committee
from access_committee.workflow import Action, Relation, State, can, state_page
from sde.accounts import check_project_access, get_project
from sde.audit import AuditLog
from sde.errors import AccessDenied, InvalidInput, InvalidTransition, SDEError
from tests.committee.truth_table import expected
from tests.committee.world import ACTOR, World, fields, make_world

DOCS = Path(__file__).resolve().parents[2] / "docs" / "committee-states.md"


def _vote(c: Committee, user: str, app_id: int) -> object:
    with contextlib.suppress(SDEError):  # the vote below says why
        c.declare(user, app_id, conflict=False)
    return c.vote(user, app_id, "defer")


ATTEMPT: dict[Action, Callable[[Committee, str, int], object]] = {
    Action.VIEW: lambda c, u, a: c.get(u, a),
    Action.EDIT: lambda c, u, a: c.update(u, a, {"purpose": "sharper"}),
    Action.SUBMIT: lambda c, u, a: c.submit(u, a),
    Action.WITHDRAW: lambda c, u, a: c.withdraw(u, a),
    Action.DECLARE: lambda c, u, a: c.declare(u, a, conflict=False),
    Action.VOTE: _vote,
    Action.NODE_DECISION: lambda c, u, a: c.node_decision(u, a, "lth", agree=True),
}
READS = {Action.VIEW}


def outcome(world: World, action: Action, user: str, app_id: int) -> str:
    try:
        ATTEMPT[action](world.committee, user, app_id)
    except AccessDenied as err:
        return "404" if err.rule == "committee.unknown" else "403"
    except InvalidTransition:
        return "409"
    return "ok"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("committee"))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.mark.parametrize("state", list(State))
def test_every_cell_of_the_truth_table(shared: World, state: State) -> None:
    wrong = []
    for action in Action:
        cells = {relation: expected(action, relation, state) for relation in Relation}
        app_id = shared.reach(state)
        for relation in sorted(cells, key=lambda r: cells[r] == "ok"):
            target = app_id
            if cells[relation] == "ok" and action not in READS:
                target = shared.reach(state)
            got = outcome(shared, action, ACTOR[relation], target)
            if got != cells[relation]:
                wrong.append(
                    f"{action} by {relation} in {state}: {got}, expected {cells[relation]}"
                )
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("relation", list(Relation))
def test_the_workflow_table_agrees_with_the_written_one(state: State, relation: Relation) -> None:
    for action in Action:
        assert can(action, relation, state) == (expected(action, relation, state) == "ok")


def test_the_state_diagram_in_the_docs_is_current() -> None:
    assert DOCS.read_text() == state_page(), (
        "python -m access_committee.workflow > docs/committee-states.md"
    )


def test_approval_with_conditions_provisions_the_project_at_once(world: World) -> None:
    app_id = world.submitted()
    view = world.approve(app_id, conditions="Report results to the patient panel", decline="umbh")
    assert view["state"] == "approved_with_conditions"
    assert view["conditions"] == "Report results to the patient panel"
    assert view["version"] == 1
    slug = view["project"]
    project = get_project(world.store, slug)
    assert project.status == "active"
    assert {(m.username, m.role) for m in project.members} == {("ada", "pi"), ("ben", "member")}
    access = check_project_access(world.store, "ben", slug)  # what the gateway asks
    assert access.scope.nodes == ("lth", "elht")  # umbh declined: left out
    assert access.scope.cohort_concepts == (255573,)
    assert set(access.scope.tables) == {"person", "condition_occurrence"}
    seen = world.committee.get("ada", app_id)
    assert {"node": "umbh", "agree": False, "reason": "capacity"} in seen["nodes_decided"]
    with pytest.raises(AccessDenied):
        check_project_access(world.store, "tom", slug)


def test_an_approval_waits_for_every_custodian(world: World) -> None:
    app_id = world.submitted()
    for member in ("kim", "lee", "max"):
        world.committee.declare(member, app_id, conflict=False)
        view = world.committee.vote(member, app_id, "approve")
    assert view["state"] == "under_review"
    for node, custodian in (("lth", "nia"), ("elht", "oli")):
        world.committee.node_decision(custodian, app_id, node, agree=True)
    assert world.committee.get("kim", app_id)["state"] == "under_review"
    done = world.committee.node_decision("pat", app_id, "umbh", agree=True)
    assert done["state"] == "approved"


def test_a_conflicted_member_cannot_vote_and_their_vote_stops_counting(world: World) -> None:
    app_id = world.submitted()
    world.committee.declare("kim", app_id, conflict=False)
    world.committee.vote("kim", app_id, "reject")
    world.committee.declare("kim", app_id, conflict=True, note="I supervise the PI")
    with pytest.raises(AccessDenied) as conflicted:
        world.committee.vote("kim", app_id, "approve")
    assert conflicted.value.rule == "committee.conflicted"
    with pytest.raises(InvalidTransition) as undeclared:
        world.committee.vote("lee", app_id, "approve")
    assert undeclared.value.rule == "committee.declare-first"
    assert world.committee.get("lee", app_id)["votes"] == []


def test_no_majority_no_decision(world: World) -> None:
    app_id = world.submitted()
    for member, vote in (("kim", "approve"), ("lee", "reject"), ("max", "defer")):
        world.committee.declare(member, app_id, conflict=False)
        view = world.committee.vote(member, app_id, vote)
    assert view["state"] == "under_review"
    world.committee.declare("nat", app_id, conflict=False)
    assert world.committee.vote("nat", app_id, "defer")["state"] == "under_review"  # 2 of 4


def test_members_named_never_vote(world: World) -> None:
    app_id = world.submitted(members=["ben", "tom"])
    with pytest.raises(AccessDenied) as member:
        world.committee.vote("tom", app_id, "approve")
    assert member.value.rule == "committee.not-permitted"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"tables": {"person": ["person_id", "nosuch"]}}, "tables", "no column nosuch"),
        ({"tables": {"person": ["person_id", "person_source_value"]}}, "tables", "never exposed"),
        ({"tables": {"measurement": ["measurement_event_id"]}}, "tables", "never exposed"),
        ({"members": ["una"]}, "members", "accreditation"),
        ({"period": {"start": "2024-01-01", "end": "2020-01-01"}}, "period", "after end"),
        ({"nodes": ["lth", "mars"]}, "nodes", "not a node"),
        ({"title": ""}, "title", "required"),
        ({"access": "dp"}, "dp", "privacy budget"),
    ],
)
def test_a_bad_application_is_refused_naming_the_field_and_kept(
    world: World, changes: dict[str, object], field: str, says: str
) -> None:
    app = world.committee.create("ada", fields("bad-one", **changes))
    assert any(p["field"] == field for p in app["problems"])
    with pytest.raises(InvalidInput) as refused:
        world.committee.submit("ada", app["id"])
    problems = refused.value.details["problems"]
    assert any(p["field"] == field and says in p["message"] for p in problems), problems
    kept = world.committee.get("ada", app["id"])
    for key, value in changes.items():
        assert kept[key] == value  # nothing typed is lost
    assert kept["state"] == "draft"


def test_only_accredited_users_apply(world: World) -> None:
    with pytest.raises(AccessDenied) as refused:
        world.committee.create("una", fields("una-proj"))
    assert refused.value.rule == "committee.not-accredited"
    with pytest.raises(InvalidInput) as unknown:
        world.committee.create("ada", {"project": "x", "colour": "blue"})
    assert unknown.value.details["field"] == "colour"


def test_an_amendment_makes_version_two(world: World) -> None:
    first = world.approve(world.submitted())
    slug = first["project"]
    amended = fields(slug, tables={"person": ["person_id"]}, nodes=["lth"])
    app = world.committee.create("ada", amended, kind="amendment")
    world.committee.submit("ada", app["id"])
    view = world.committee.node_decision("nia", app["id"], "lth", agree=True)
    for member in ("kim", "lee", "max"):
        world.committee.declare(member, app["id"], conflict=False)
        view = world.committee.vote(member, app["id"], "approve")
    assert (view["state"], view["version"]) == ("approved", 2)
    access = check_project_access(world.store, "ada", slug)
    assert access.version == 2
    assert dict(access.scope.tables) == {"person": ("person_id",)}


def test_every_step_is_audited(world: World) -> None:
    view = world.approve(world.submitted())
    events = [
        e.action
        for e in AuditLog(world.store.engine).entries()
        if e.object == f"application:{view['id']}"
    ]
    for event in (
        "application.create",
        "application.state",
        "application.conflict",
        "application.vote",
        "application.node",
        "application.decide",
    ):
        assert event in events, event
    assert AuditLog(world.store.engine).verify().ok
