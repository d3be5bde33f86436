"""Red-team tests of the data access committee (applications -> projects -> gateway scope).

A failing test here is a hole: each docstring says the attack and why it matters. Passing
tests are attacks that failed, kept as regression tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from access_committee.app import create_app
from access_committee.workflow import State
from sde.accounts import check_project_access, get_project
from sde.accounts.projects import change_status
from sde.accounts.users import record_accreditation, record_daa, set_roles
from sde.errors import AccessDenied, InvalidInput, InvalidTransition, SDEError
from sde.gateway.auth import TokenTable
from sde.registry.audit_log import AuditEntry
from sde.settings import Settings
from tests.committee.world import CUSTODIANS, NEXT_YEAR, PEOPLE, World, fields, make_world

PREFIX = "/services/committee/"
API = f"{PREFIX}api"


def headers(name: str) -> dict[str, str]:
    return {"Authorization": f"token token-of-{name}"}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    settings = Settings(
        registry_url=str(world.store.engine.url), committee_quorum=3, SDE_GATEWAY_PREFIX=PREFIX
    )
    tokens = TokenTable({f"token-of-{name}": name for name in PEOPLE})
    with TestClient(
        create_app(settings, tokens, store=world.store), raise_server_exceptions=False
    ) as c:
        yield c


TEXT = {k: v for k, v in fields().items() if k in ("lay_summary", "purpose", "public_benefit")}
TEXT.update(legal_basis=fields()["legal_basis"], ethics_ref=fields()["ethics_ref"])


def _approved_project(
    world: World, voters: tuple[str, ...] = ("kim", "lee", "max"), **changes: object
) -> str:
    """A project approved for real (all nodes agree); its slug."""
    app_id = world.submitted(**changes)
    view = _approve_amendment(world, app_id, voters)
    assert view["state"] == State.APPROVED.value, view
    return str(view["project"])


def _amend(world: World, slug: str, **changes: object) -> int:
    """The PI's amendment of ``slug`` with ``changes``, submitted. (An amendment is
    pre-filled with the scope fields only: the text fields are typed again.)"""
    draft = world.committee.amend("ada", slug)
    world.committee.update("ada", draft["id"], {**TEXT, **changes})
    world.committee.submit("ada", draft["id"])
    return int(draft["id"])


def _approve_amendment(world: World, app_id: int, voters: tuple[str, ...]) -> dict[str, object]:
    for node, custodian in CUSTODIANS.items():
        world.committee.node_decision(custodian, app_id, node, agree=True)
    view: dict[str, object] = {}
    for member in voters:
        world.committee.declare(member, app_id, conflict=False)
        view = world.committee.vote(member, app_id, "approve")
    return view


def _refusals(world: World, user: str) -> list[AuditEntry]:
    with world.store.read() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.user == user, AuditEntry.outcome == "refused")
            )
        )


# -- (a) scope or membership wider than approved ---------------------------------------------


def test_amendment_that_drops_a_member_removes_their_access(world: World) -> None:
    """Attack: the PI amends the project to drop ``ben`` (members=[]); the committee approves
    a version whose reviewed membership is ada alone. ``_provision`` only ever calls
    ``add_member_in`` and never removes anyone, so ben keeps querying version 2's scope
    (which may be wider) although no approval names him. (applications.py _provision)"""
    slug = _approved_project(world)
    assert world.committee.amend("ada", slug)["members"] == ["ben"]
    view = _approve_amendment(world, _amend(world, slug, members=[]), ("kim", "lee", "max"))
    assert view["state"] == State.APPROVED.value
    assert view["version"] == 2
    with pytest.raises(AccessDenied):
        check_project_access(world.store, "ben", slug)


def test_amendment_that_names_a_new_pi_demotes_the_old_one(world: World) -> None:
    """Attack: an amendment names ``tom`` as the PI (and ada nowhere). After approval ada is
    still a ``pi`` member: she keeps data access and the right to file further amendments
    of a project the committee last approved under tom. (applications.py _provision)"""
    slug = _approved_project(world)
    app_id = _amend(world, slug, pi="tom", members=["ben"])
    assert _approve_amendment(world, app_id, ("kim", "lee", "max"))["state"] == "approved"
    roles = {m.username: m.role for m in get_project(world.store, slug).members}
    assert roles.get("tom") == "pi"
    assert "ada" not in roles, roles


def test_project_member_on_the_committee_cannot_vote_on_its_amendment(world: World) -> None:
    """Attack (self-approval): ``kim`` sits on the committee and is a member of ada's
    project. The PI's amendment is pre-filled with kim as a member (so kim could not vote),
    but the PI deletes kim from the draft's member list; kim's membership stays (nothing
    removes it), ``_relation`` now calls her COMMITTEE and she votes to widen her own
    project. Conflict is judged only from the application body, not from the project's
    actual members. (applications.py _relation)"""
    set_roles(world.store, "tests", "kim", ["committee", "researcher"])
    record_accreditation(world.store, "tests", "kim", NEXT_YEAR)
    record_daa(world.store, "tests", "kim", "v1")
    slug = _approved_project(world, ("lee", "max", "nat"), members=["ben", "kim"])
    assert check_project_access(world.store, "kim", slug).version == 1
    wider = {**fields(slug)["tables"], "drug_exposure": "*"}
    app_id = _amend(world, slug, members=["ben"], tables=wider)
    try:
        world.committee.declare("kim", app_id, conflict=False)
        view = world.committee.vote("kim", app_id, "approve")
    except AccessDenied:
        return  # the conflict was caught: the attack failed
    pytest.fail(f"kim voted on her own project's amendment: {view['votes']}")


def test_a_declared_conflict_cannot_be_retracted_to_vote(world: World) -> None:
    """Attack: a member declares a conflict (recorded with a note), then re-declares
    ``conflict=False`` in the same round and votes; the vote counts toward quorum. A
    conflict once declared for a round should stand (or need someone else's say), else the
    declaration is meaningless. (applications.py declare)"""
    app_id = world.submitted()
    world.committee.declare("kim", app_id, conflict=True, note="I supervise the PI")
    with pytest.raises(InvalidTransition) as retracted:  # the conflict stands
        world.committee.declare("kim", app_id, conflict=False)
    assert retracted.value.rule == "committee.conflict-final"
    with pytest.raises(AccessDenied):
        world.committee.vote("kim", app_id, "approve")


def test_new_application_cannot_take_an_existing_slug(world: World) -> None:
    """Regression: a "new" application for an existing project's slug is refused at submit,
    and one submitted before the slug was taken cannot be approved into it."""
    first = world.submitted()
    second = world.committee.create("tom", fields("proj-1", pi="tom", members=[]))
    world.committee.submit("tom", second["id"])
    world.approve(first)
    with pytest.raises(SDEError):
        world.approve(second["id"])
    roles = {m.username: m.role for m in get_project(world.store, "proj-1").members}
    assert "tom" not in roles
    again = world.committee.create("tom", fields("proj-1", pi="tom", members=[]))
    with pytest.raises(InvalidInput):
        world.committee.submit("tom", again["id"])


def test_outsider_cannot_amend_someone_elses_project(world: World) -> None:
    """Regression: tom (not a member) and ben (a member, not PI) cannot amend ada's project."""
    slug = _approved_project(world)
    with pytest.raises(AccessDenied) as err:
        world.committee.amend("tom", slug)
    assert err.value.rule == "project.unknown"
    with pytest.raises(AccessDenied):
        world.committee.amend("ben", slug)


def test_application_is_frozen_once_submitted_or_approved(world: World) -> None:
    """Regression: no edit in review or after approval."""
    app_id = world.submitted()
    world.committee.declare("kim", app_id, conflict=False)
    world.committee.vote("kim", app_id, "approve")
    with pytest.raises(InvalidTransition):
        world.committee.update("ada", app_id, {"tables": {"person": "*"}})
    world.approve(app_id)
    with pytest.raises(InvalidTransition):
        world.committee.update("ada", app_id, {"tables": {"person": "*"}})


def test_votes_of_an_earlier_round_do_not_count(world: World) -> None:
    """Regression: two approvals in round 1, deferral by the rest, resubmission: one more
    approval in round 2 does not decide (earlier votes and node decisions are per round)."""
    app_id = world.submitted()
    for member, vote in (("kim", "approve"), ("lee", "defer"), ("max", "defer")):
        world.committee.declare(member, app_id, conflict=False)
        world.committee.vote(member, app_id, vote)
    assert world.committee.get("ada", app_id)["state"] == State.DEFERRED.value
    world.committee.submit("ada", app_id)
    for node, custodian in CUSTODIANS.items():
        world.committee.node_decision(custodian, app_id, node, agree=True)
    world.committee.declare("nat", app_id, conflict=False)
    view = world.committee.vote("nat", app_id, "approve")
    assert view["state"] == State.UNDER_REVIEW.value


def test_custodian_decides_only_for_their_node_and_declined_node_is_left_out(
    world: World,
) -> None:
    """Regression: nia (lth) cannot answer for elht; a declined node is not in the scope."""
    app_id = world.submitted()
    with pytest.raises(AccessDenied):
        world.committee.node_decision("nia", app_id, "elht", agree=True)
    view = world.approve(app_id, decline="umbh")
    scope = check_project_access(world.store, "ada", str(view["project"])).scope
    assert scope.nodes == ("lth", "elht")


def test_a_revoked_project_is_not_amended_back_to_life(world: World) -> None:
    """Regression: a PI's amendment of a revoked project cannot provision a new version."""
    slug = _approved_project(world)
    app_id = _amend(world, slug)
    change_status(world.store, "sam", slug, "revoke", "breach")
    with pytest.raises(SDEError):
        _approve_amendment(world, app_id, ("kim", "lee", "max"))
    with pytest.raises(AccessDenied):
        check_project_access(world.store, "ada", slug)


def test_suspension_holds_through_an_approved_amendment(world: World) -> None:
    """Regression: approving an amendment of a suspended project does not reactivate it."""
    slug = _approved_project(world)
    app_id = _amend(world, slug)
    change_status(world.store, "sam", slug, "suspend", "ethics")
    assert _approve_amendment(world, app_id, ("kim", "lee", "max"))["version"] == 2
    with pytest.raises(AccessDenied) as err:
        check_project_access(world.store, "ben", slug)
    assert err.value.rule == "access.suspended"


# -- (c) integrity ------------------------------------------------------------------------


def test_non_finite_privacy_budget_is_refused_over_http(client: TestClient) -> None:
    """Attack: the non-standard JSON token ``NaN`` as dp.epsilon. Starlette's json.loads
    and pydantic's float accept it and ``Scope._dp`` lets it through (``nan < 0`` and
    ``nan <= 0`` are both False): the draft is stored (201) and echoed back with a bare
    ``NaN`` that strict JSON clients cannot parse. Expected: a 4xx naming dp.epsilon.
    (api.py Fields.dp has no allow_inf_nan=False; scope._dp)"""
    body = json.dumps(fields("nan-proj", access="dp")).replace(
        '"access": "dp"', '"access": "dp", "dp": {"epsilon": NaN, "delta": 1e-6}'
    )
    made = client.post(
        f"{API}/applications",
        content=body,
        headers={**headers("ada"), "Content-Type": "application/json"},
    )
    assert 400 <= made.status_code < 500, (made.status_code, made.text[:200])


@pytest.mark.parametrize("epsilon", [math.nan, math.inf])
def test_non_finite_privacy_budget_cannot_be_approved(world: World, epsilon: float) -> None:
    """Attack: dp.epsilon = NaN or +inf. ``problems`` finds nothing, the committee approves,
    and the project's scope carries the non-finite budget (``check_project_access`` returns
    it): the scope loads but the DP ledger refuses it at query time
    (``to_units``: dp.budget-invalid), or any budget check without that guard sees an
    unlimited budget. A budget must be finite when the application is submitted.
    (scope._dp, forms.problems)"""
    app = world.committee.create(
        "ada", fields("inf-proj", access="dp", dp={"epsilon": epsilon, "delta": 1e-6})
    )
    try:
        world.committee.submit("ada", app["id"])
    except InvalidInput:
        return  # refused at submission: the attack failed
    world.approve(app["id"])
    dp = check_project_access(world.store, "ada", "inf-proj").scope.dp or {}
    assert math.isfinite(dp["epsilon"]), f"approved scope has dp {dp}"


def test_cohort_concept_ids_beyond_bigint_are_refused(world: World) -> None:
    """Attack: cohort.any_condition = [2**70]. Scope accepts any positive int, but concept
    ids are BIGINT and the gateway inlines them into SQL (proxy/barrier/plan.py): the scope
    loads and is approved, then every query of the project breaks (or compares as NUMERIC).
    Expected: refused at submission, naming cohort. (scope._cohort)"""
    app = world.committee.create("ada", fields("big-cohort", cohort={"any_condition": [2**70]}))
    with pytest.raises(InvalidInput):
        world.committee.submit("ada", app["id"])


def test_odd_types_in_a_draft_are_a_clear_4xx(client: TestClient) -> None:
    """Regression: odd JSON types for scope fields are refused with 4xx, never 500."""
    odd = [
        {"tables": ["person"]},
        {"tables": {"person": 1}},
        {"cohort": {"any_condition": "x"}},
        {"period": ["2020-01-01"]},
        {"nodes": "lth"},
        {"dp": {"epsilon": "x"}},
        {"sdc": {"threshold": [1]}},
        {"members": "ben"},
        {"expires": 5},
        {"title": "a\x00b" * 3, "period": {"start": "not a date"}},
        {"sdc": {"threshold": 10**40}},
        {"period": {"start": "2020-01-01", "middle": "x"}},
    ]
    bad = []
    for change in odd:
        r = client.post(
            f"{API}/applications", json={"project": "odd", **change}, headers=headers("ada")
        )
        if r.status_code >= 500:
            bad.append((change, r.status_code))
    assert not bad


# -- (b) seeing what you should not ---------------------------------------------------------


def test_applicant_does_not_see_votes_and_outsider_sees_nothing(
    world: World, client: TestClient
) -> None:
    """Regression: votes and conflict notes are for the committee; to an outsider an
    application looks the same as a missing one."""
    app_id = world.submitted()
    world.committee.declare("kim", app_id, conflict=True, note="my sister is the PI")
    view = client.get(f"{API}/applications/{app_id}", headers=headers("ada")).json()
    assert "votes" not in view
    assert "conflicts" not in view
    hidden = client.get(f"{API}/applications/{app_id}", headers=headers("tom"))
    missing = client.get(f"{API}/applications/999999", headers=headers("tom"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["rule"] == missing.json()["rule"]
    assert all(
        a["id"] != app_id for a in client.get(f"{API}/applications", headers=headers("tom")).json()
    )


# -- (d) audit ------------------------------------------------------------------------------


def test_refused_status_change_by_non_admin_is_audited(world: World, client: TestClient) -> None:
    """Attack: ben (a project member) tries to revoke/suspend over the API. The refusal
    (``committee.admin-only``) is raised outside any audited block, so the attempt leaves no
    trace, unlike every other refused committee action. (api.py _status)"""
    slug = _approved_project(world)
    r = client.post(
        f"{API}/projects/{slug}/suspend", json={"reason": "because"}, headers=headers("ben")
    )
    assert r.status_code == 403
    assert any(e.rule == "committee.admin-only" for e in _refusals(world, "ben"))


def test_refused_amendment_of_someone_elses_project_is_audited(
    world: World, client: TestClient
) -> None:
    """Attack: tom probes slugs by asking to amend them. ``Committee.amend`` refuses in a
    plain read transaction (no ``_audited``), so the probe of another team's project is not
    recorded. (applications.py amend)"""
    slug = _approved_project(world)
    r = client.post(f"{API}/projects/{slug}/amendments", headers=headers("tom"))
    assert r.status_code == 404
    assert _refusals(world, "tom"), "a refused amendment left no audit entry"


def test_stale_amendment_does_not_undo_a_later_narrowing(world: World) -> None:
    """Attack: the PI drafts amendment B while the project is at version 1 (it copies v1's
    scope, with condition_occurrence). The committee then approves amendment A dropping
    condition_occurrence (v2). B, changing only its wording, is approved next and becomes
    v3 = v1's scope: the table the committee removed is back without any decision to
    re-grant it. An amendment should be based on the version it amends (refused or
    rebased when the project has moved on). (applications.py amend/_provision)"""
    slug = _approved_project(world)
    stale = _amend(world, slug, purpose="Same study, clearer wording")
    narrowing = _amend(world, slug, tables={"person": ["person_id", "year_of_birth"]})
    assert _approve_amendment(world, narrowing, ("kim", "lee", "max"))["version"] == 2
    assert "condition_occurrence" not in check_project_access(world.store, "ada", slug).scope.tables
    try:
        _approve_amendment(world, stale, ("kim", "lee", "max"))
    except SDEError:
        return  # the stale amendment was refused: the attack failed
    tables = check_project_access(world.store, "ada", slug).scope.tables
    assert "condition_occurrence" not in tables, "a stale amendment re-granted a dropped table"


def test_votes_of_someone_no_longer_on_the_committee_do_not_count(world: World) -> None:
    """Attack: kim and lee vote approve; kim is then taken off the committee (e.g. for
    misconduct); max's approval completes a "quorum" of 3 that includes kim's vote, though
    only two current committee members approved. (applications.py _counted_votes counts
    every vote row, whoever cast it)"""
    app_id = world.submitted()
    for node, custodian in CUSTODIANS.items():
        world.committee.node_decision(custodian, app_id, node, agree=True)
    for member in ("kim", "lee"):
        world.committee.declare(member, app_id, conflict=False)
        world.committee.vote(member, app_id, "approve")
    set_roles(world.store, "tests", "kim", [])
    world.committee.declare("max", app_id, conflict=False)
    view = world.committee.vote("max", app_id, "approve")
    assert view["state"] == State.UNDER_REVIEW.value, "decided with a removed member's vote"


def test_suspension_and_revocation_take_effect_at_once(world: World, client: TestClient) -> None:
    """Regression: the gateway's check refuses the very next query after suspend/revoke."""
    slug = _approved_project(world)
    assert check_project_access(world.store, "ben", slug).version == 1
    r = client.post(
        f"{API}/projects/{slug}/suspend", json={"reason": "audit"}, headers=headers("sam")
    )
    assert r.status_code == 200, r.text
    with pytest.raises(AccessDenied):
        check_project_access(world.store, "ben", slug)
    r = client.post(f"{API}/projects/{slug}/revoke", json={"reason": "x"}, headers=headers("sam"))
    assert r.status_code == 200, r.text
    assert (
        client.post(f"{API}/projects/{slug}/amendments", headers=headers("ada")).status_code < 500
    )


def test_one_vote_per_member_and_node_decision_per_node(world: World) -> None:
    """Regression: voting three times as kim is one vote; no decision from one member."""
    app_id = world.submitted()
    for node, custodian in CUSTODIANS.items():
        world.committee.node_decision(custodian, app_id, node, agree=True)
    world.committee.declare("kim", app_id, conflict=False)
    for _ in range(3):
        view = world.committee.vote("kim", app_id, "approve")
    assert view["state"] == State.UNDER_REVIEW.value
    assert len(view["votes"]) == 1


@pytest.mark.parametrize(
    "dp",
    [{"delta": 1e-6}, {"epsilon": 1.0, "delta": 2.0}],
    ids=["no-epsilon", "delta-above-one"],
)
def test_a_dp_budget_that_breaks_at_query_time_is_refused(
    world: World, dp: dict[str, float]
) -> None:
    """Attack: a dp project whose budget has no epsilon (``{"delta": 1e-6}``) or a delta
    above 1 (not a probability: no privacy). ``forms.problems`` only asks that dp be
    non-empty and ``Scope._dp`` defaults a missing epsilon to "fine", so the committee
    approves a scope the gateway cannot use: ``sde/connection.py`` reads
    ``scope.dp["epsilon"]`` (KeyError: a 500 on the first DP query) or runs with
    delta = 2. Expected: refused at submission, naming dp. (scope._dp, forms.problems)"""
    app = world.committee.create("ada", fields("dp-proj", access="dp", dp=dp))
    try:
        world.committee.submit("ada", app["id"])
    except InvalidInput:
        return  # refused: the attack failed
    world.approve(app["id"])
    got = check_project_access(world.store, "ada", "dp-proj").scope.dp or {}
    assert "epsilon" in got, f"approved dp scope without epsilon: {got}"
    assert 0 <= got.get("delta", 0.0) < 1, f"approved dp scope with delta {got['delta']}"


def test_a_custodian_who_lost_the_node_does_not_decide_for_it(world: World) -> None:
    """Attack: nia agrees for lth, then loses custody of lth (e.g. she left the trust, and
    the new custodian would decline). Her agreement still counts and lth is provisioned:
    node decisions are never re-checked against current custodianship.
    (applications.py _node_decisions/_maybe_decide)"""
    from sde.accounts.users import revoke_custodian

    app_id = world.submitted()
    world.committee.node_decision("nia", app_id, "lth", agree=True)
    revoke_custodian(world.store, "tests", "nia", "lth")
    for node, custodian in (("elht", "oli"), ("umbh", "pat")):
        world.committee.node_decision(custodian, app_id, node, agree=True)
    for member in ("kim", "lee", "max"):
        world.committee.declare(member, app_id, conflict=False)
        view = world.committee.vote(member, app_id, "approve")
    assert view["state"] != State.APPROVED.value or "lth" not in (
        check_project_access(world.store, "ada", str(view["project"])).scope.nodes or ()
    ), "lth provisioned on the word of someone who no longer holds it"
