"""Projects: approval versions, the status workflow as a table, memberships and who may use
what (the rules the gateway and the hub call)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from sde.accounts import (
    TRANSITIONS,
    AccountStore,
    active_projects_of,
    add_member,
    add_version,
    change_status,
    check_may_spawn,
    check_project_access,
    create_project,
    expire_due,
    get_project,
    may_spawn,
    projects_of,
    record_accreditation,
    scope_of,
    verify_login,
)
from sde.accounts.model import PROJECT_STATUSES
from sde.errors import AccessDenied, ConfigurationError, InvalidInput, InvalidTransition
from sde.scope import Scope
from tests.accounts.conftest import ADMIN, NOW, make_user

EXPIRES = NOW.date() + dt.timedelta(days=100)


def _scope(slug: str = "htn", access: str = "rows", expires: dt.date = EXPIRES) -> dict:
    return {
        "project": slug,
        "access": access,
        "tables": {"person": ["person_id", "year_of_birth"], "condition_occurrence": "*"},
        "dp": {"epsilon": 3.0, "delta": 1e-6},
        "expires": expires.isoformat(),
    }


def _project_at(store: AccountStore, status: str) -> None:
    """A project ``htn`` in ``status``, reached through the workflow."""
    create_project(store, ADMIN, "htn", title="Hypertension", scope=_scope(), now=NOW)
    path = {"active": [], "suspended": ["suspend"], "expired": ["expire"], "revoked": ["revoke"]}
    for action in path[status]:
        change_status(store, ADMIN, "htn", action, "set-up", now=NOW)


def test_every_status_is_reachable_and_revoked_is_final() -> None:
    targets = {target for _, target in TRANSITIONS.values()}
    sources = set().union(*(s for s, _ in TRANSITIONS.values()))
    assert targets | {"active"} == set(PROJECT_STATUSES)
    assert "revoked" not in sources


@pytest.mark.parametrize(
    ("status", "action"), list(itertools.product(PROJECT_STATUSES, sorted(TRANSITIONS)))
)
def test_status_transitions_follow_the_table(store: AccountStore, status: str, action: str) -> None:
    _project_at(store, status)
    sources, target = TRANSITIONS[action]
    if status in sources:
        assert change_status(store, ADMIN, "htn", action, "why", now=NOW).status == target
        assert get_project(store, "htn").status_reason == "why"
    else:
        with pytest.raises(InvalidTransition) as info:
            change_status(store, ADMIN, "htn", action, "why", now=NOW)
        assert info.value.rule == "project.transition"
        assert get_project(store, "htn").status == status


def test_a_reason_is_required(store: AccountStore) -> None:
    _project_at(store, "active")
    with pytest.raises(InvalidInput) as info:
        change_status(store, ADMIN, "htn", "suspend", "  ")
    assert info.value.rule == "project.reason-required"


def test_versions_hold_scopes_and_the_newest_governs(store: AccountStore) -> None:
    first = Scope.load(_scope())
    project = create_project(store, ADMIN, "htn", title="Hypertension", scope=first, now=NOW)
    assert (project.version, project.access, project.expires) == (1, "rows", EXPIRES)
    later = EXPIRES + dt.timedelta(days=365)
    project = add_version(store, ADMIN, "htn", _scope(access="dp", expires=later), now=NOW)
    assert (project.version, project.access, project.expires) == (2, "dp", later)
    assert scope_of(store, "htn", 1) == (1, first)
    version, scope = scope_of(store, "htn")
    assert (version, scope.access, scope.dp) == (2, "dp", {"epsilon": 3.0, "delta": 1e-6})


def test_bad_scopes_are_refused(store: AccountStore) -> None:
    create_project(store, ADMIN, "htn", title="Hypertension", now=NOW)
    with pytest.raises(InvalidInput) as info:
        add_version(store, ADMIN, "htn", _scope(slug="other"))
    assert info.value.rule == "project.scope-mismatch"
    with pytest.raises(ConfigurationError) as bad:
        add_version(store, ADMIN, "htn", {**_scope(), "tables": {"persons": "*"}})
    assert bad.value.rule == "scope.invalid"
    with pytest.raises(InvalidInput) as none:
        scope_of(store, "htn")
    assert none.value.rule == "project.no-scope"
    assert get_project(store, "htn").version == 0


def test_a_revoked_project_takes_no_new_version_or_member(store: AccountStore) -> None:
    make_user(store, "ada")
    _project_at(store, "revoked")
    with pytest.raises(InvalidTransition):
        add_version(store, ADMIN, "htn", _scope())
    with pytest.raises(InvalidTransition):
        add_member(store, ADMIN, "htn", "ada")


def test_reactivating_past_the_expiry_is_refused(store: AccountStore) -> None:
    _project_at(store, "suspended")
    late = dt.datetime.combine(EXPIRES + dt.timedelta(days=1), dt.time(9), dt.UTC)
    with pytest.raises(InvalidTransition) as info:
        change_status(store, ADMIN, "htn", "reactivate", "review done", now=late)
    assert info.value.rule == "project.past-expiry"


def test_expiry_is_in_force_at_once_and_swept_into_the_status(store: AccountStore) -> None:
    _project_at(store, "active")
    late = dt.datetime.combine(EXPIRES + dt.timedelta(days=1), dt.time(9), dt.UTC)
    assert get_project(store, "htn").effective_status(late.date()) == "expired"
    assert get_project(store, "htn").effective_status(EXPIRES) == "active"
    assert expire_due(store, ADMIN, now=NOW) == []
    assert expire_due(store, ADMIN, now=late) == ["htn"]
    assert get_project(store, "htn").status == "expired"


def test_only_researchers_become_members(store: AccountStore) -> None:
    make_user(store, "olga", roles=("output-checker",))
    _project_at(store, "active")
    with pytest.raises(InvalidInput) as info:
        add_member(store, ADMIN, "htn", "olga")
    assert info.value.rule == "project.member-not-researcher"


@pytest.mark.parametrize(
    ("status", "accredited", "daa", "rule"),
    [
        ("active", True, True, None),
        ("suspended", True, True, "access.suspended"),
        ("revoked", True, True, "access.revoked"),
        ("expired", True, True, "access.expired"),
        ("active", False, True, "access.not-accredited"),
        ("active", True, False, "access.no-daa"),
    ],
)
def test_who_may_use_a_project(
    store: AccountStore, status: str, accredited: bool, daa: bool, rule: str | None
) -> None:
    until = NOW.date() + dt.timedelta(days=1 if accredited else -1)
    make_user(store, "ada", accredited_until=until, daa=daa)
    _project_at(store, "active")
    add_member(store, ADMIN, "htn", "ada")
    if status != "active":
        change_status(
            store,
            ADMIN,
            "htn",
            {"suspended": "suspend", "revoked": "revoke", "expired": "expire"}[status],
            "x",
            now=NOW,
        )
    if rule is None:
        access = check_project_access(store, "ada", "htn", now=NOW)
        assert (access.version, access.scope.project) == (1, "htn")
        assert [p.slug for p in active_projects_of(store, "ada", NOW)] == ["htn"]
        assert may_spawn(store, "ada", NOW)
        return
    with pytest.raises(AccessDenied) as info:
        check_project_access(store, "ada", "htn", now=NOW)
    assert info.value.rule == rule
    assert active_projects_of(store, "ada", NOW) == []
    with pytest.raises(AccessDenied) as spawn:
        check_may_spawn(store, "ada", NOW)
    assert spawn.value.rule == "auth.no-project"
    assert [p.slug for p in projects_of(store, "ada")] == ["htn"]  # still listed in api/me


def test_a_stranger_and_a_missing_project_look_the_same(store: AccountStore) -> None:
    make_user(store, "ada")
    make_user(store, "bob")
    _project_at(store, "active")
    add_member(store, ADMIN, "htn", "ada")
    answers = set()
    for user, slug in (("bob", "htn"), ("bob", "nope"), ("ghost", "htn")):
        with pytest.raises(AccessDenied) as info:
            check_project_access(store, user, slug, now=NOW)
        answers.add((info.value.rule, info.value.message.replace(slug, "P")))
    assert answers == {("project.unknown", "there is no project 'P'")}


def test_the_expiry_date_counts_for_access(store: AccountStore) -> None:
    make_user(store, "ada", accredited_until=EXPIRES + dt.timedelta(days=400))
    _project_at(store, "active")
    add_member(store, ADMIN, "htn", "ada")
    last_day = dt.datetime.combine(EXPIRES, dt.time(23), dt.UTC)
    assert check_project_access(store, "ada", "htn", now=last_day).version == 1
    with pytest.raises(AccessDenied) as info:
        check_project_access(store, "ada", "htn", now=last_day + dt.timedelta(hours=2))
    assert info.value.rule == "access.expired"


def test_login_reports_the_projects_and_an_applicant_has_none(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    future = make_user(store, "fay")  # accredited, in no project: may log in, no server
    _project_at(store, "active")
    add_member(store, ADMIN, "htn", "ada")
    assert verify_login(store, "ada", ada.password, ada.code(), now=NOW).projects == ("htn",)
    result = verify_login(store, "fay", future.password, future.code(), now=NOW)
    assert (result.projects, result.may_spawn) == ((), False)
    record_accreditation(store, ADMIN, "ada", NOW.date() - dt.timedelta(days=1))
    assert not may_spawn(store, "ada", NOW)
