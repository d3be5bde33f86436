"""The administrators' pages over HTTP: who sees them, every form, refusals with their rule,
typed values kept, every change made by the account services and audited."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx  # the client starlette's TestClient answers with
import pytest
from fastapi.testclient import TestClient

from access_committee.workflow import State
from sde.accounts import (
    add_version,
    check_project_access,
    create_project,
    get_project,
    get_user,
    scope_of,
    set_password,
    verify_login,
)
from sde.audit import AuditLog
from sde.errors import AccessDenied
from tests.committee.http import PREFIX, committee_client, page, post
from tests.committee.world import World, make_world

ADMIN_PAGES = ["admin", "admin/users", "admin/users/ada", "admin/projects"]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with committee_client(world) as c:
        yield c


@pytest.fixture
def project(world: World) -> str:
    """An approved project (ada PI, ben member) on lth and elht (umbh declined)."""
    app_id = world.reach(State.SUBMITTED)
    view = world.approve(app_id, decline="umbh")
    assert view["state"] == "approved"
    return str(view["project"])


def events(world: World, obj: str) -> list[tuple[str, str, str, dict[str, object]]]:
    return [
        (e.user, e.action, e.outcome, json.loads(e.details or "{}"))
        for e in AuditLog(world.store.engine).entries()
        if e.object == obj
    ]


def refused(answer: httpx.Response, status: int, rule: str) -> str:
    text = answer.text
    assert answer.status_code == status, text[:800]
    assert answer.headers["content-type"].startswith("text/html")
    assert f"[{rule}]" in text
    return text


# -- who sees what -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_PAGES)
@pytest.mark.parametrize("who", ["ada", "kim", "nia", "tom"])
def test_admin_pages_do_not_exist_for_anyone_else(client: TestClient, who: str, path: str) -> None:
    text = refused(page(client, who, path), 404, "pages.not-found")
    assert "Administration" not in text.split("<main", 1)[1]


def test_a_project_page_does_not_exist_for_its_own_members(
    client: TestClient, project: str
) -> None:
    refused(page(client, "ada", f"admin/projects/{project}"), 404, "pages.not-found")


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_for_the_admin(client: TestClient, path: str) -> None:
    answer = page(client, "sam", path)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_anonymous_is_asked_to_sign_in(client: TestClient) -> None:
    refused(page(client, None, "admin/users"), 401, "auth.unauthenticated")


@pytest.mark.parametrize("name", ["nobody", "Bad Name", "x" * 40, "y" * 300, "ünï"])
def test_unknown_user_looks_missing(client: TestClient, name: str) -> None:
    refused(page(client, "sam", f"admin/users/{name}"), 404, "pages.not-found")
    answer = post(client, "sam", f"admin/users/{name}/unlock")
    refused(answer, 404, "pages.not-found")


# -- users ---------------------------------------------------------------------------------


def _lock(world: World, name: str) -> None:
    set_password(world.store, "tests", name, "a long enough password")
    for _ in range(5):
        with pytest.raises(AccessDenied):
            verify_login(world.store, name, "wrong password!!", "000000")


def test_users_list_shows_roles_accreditation_agreement_and_locks(
    world: World, client: TestClient
) -> None:
    _lock(world, "tom")
    text = page(client, "sam", "admin/users").text
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr>\s*<td><a href="[^"]*admin/users/(\w+)">.*?</tr>', text, re.S)
    }
    assert set(rows) == {
        "ada", "ben", "kim", "lee", "max", "nat", "nia", "oli", "pat", "sam", "tom", "una"
    }  # fmt: skip
    ada = get_user(world.store, "ada")
    assert str(ada.accredited_until) in rows["ada"]
    assert "version v1" in rows["ada"]
    assert "not accredited" in rows["una"]
    assert "custodian (lth)" in rows["nia"]
    assert "locked" in rows["tom"]
    assert "locked" not in rows["ada"]


def test_accreditation_is_recorded_and_audited(world: World, client: TestClient) -> None:
    answer = post(
        client, "sam", "admin/users/una/accreditation", {"until": "2027-03-31", "ref": "SRS 9"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PREFIX}admin/users/una?done=accredited"
    una = get_user(world.store, "una")
    assert (una.accredited_until, una.accreditation_ref) == (dt.date(2027, 3, 31), "SRS 9")
    assert ("sam", "user.accredit", "ok", {"until": "2027-03-31", "ref": "SRS 9"}) in events(
        world, "user:una"
    )
    shown = page(client, "sam", "admin/users/una?done=accredited").text
    assert "The accreditation was recorded." in shown
    assert 'value="2027-03-31"' in shown


@pytest.mark.parametrize("typed", ["31/03/2027", "2027-02-30", "", "soon"])
def test_a_bad_date_is_refused_with_what_was_typed_kept(
    world: World, client: TestClient, typed: str
) -> None:
    before = get_user(world.store, "una")
    answer = post(client, "sam", "admin/users/una/accreditation", {"until": typed, "ref": "my ref"})
    text = refused(answer, 400, "user.invalid-date")
    assert f'value="{typed}"' in text
    assert 'value="my ref"' in text
    assert 'class="field has-error"' in text
    assert get_user(world.store, "una") == before
    assert ("sam", "user.accredit", "refused", {}) in events(world, "user:una")


def test_a_form_without_its_csrf_token_changes_nothing(world: World, client: TestClient) -> None:
    for token in ("", "forged", "é"):
        answer = post(
            client, "sam", "admin/users/una/accreditation", {"until": "2027-03-31"}, token=token
        )
        refused(answer, 403, "pages.csrf")
    assert get_user(world.store, "una").accredited_until is None


def test_unlock(world: World, client: TestClient) -> None:
    _lock(world, "tom")
    now = dt.datetime.now(dt.UTC)
    assert get_user(world.store, "tom").is_locked(now)
    assert "Unlock and reset the count" in page(client, "sam", "admin/users/tom").text
    answer = post(client, "sam", "admin/users/tom/unlock")
    assert answer.headers["location"] == f"{PREFIX}admin/users/tom?done=unlocked"
    tom = get_user(world.store, "tom")
    assert not tom.is_locked(now)
    assert tom.failed_logins == 0
    assert ("sam", "user.unlock", "ok", {"failed_logins": 5, "was_locked": True}) in events(
        world, "user:tom"
    )


def test_roles_granted_and_removed(world: World, client: TestClient) -> None:
    post(client, "sam", "admin/users/tom/roles", {"role": "committee", "op": "grant"})
    assert get_user(world.store, "tom").roles == {"researcher", "committee"}
    post(client, "sam", "admin/users/tom/roles", {"role": "researcher", "op": "remove"})
    assert get_user(world.store, "tom").roles == {"committee"}
    changes = [d for _, e, _, d in events(world, "user:tom") if e == "user.roles"]
    assert changes == [
        {"from": ["researcher"], "to": ["committee", "researcher"]},
        {"from": ["committee", "researcher"], "to": ["committee"]},
    ]


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        ({"role": "root", "op": "grant"}, "user.invalid-role"),
        ({"role": "custodian", "op": "grant"}, "user.custodian-nodes"),
        ({"role": "admin", "op": "remove"}, "user.no-such-role"),
        ({"role": "admin", "op": "maybe"}, "pages.form"),
        ({"role": "", "op": "grant"}, "user.invalid-role"),
    ],
)
def test_bad_role_changes_are_refused(
    world: World, client: TestClient, data: dict[str, str], rule: str
) -> None:
    answer = post(client, "sam", "admin/users/tom/roles", list(data.items()))
    assert answer.status_code in (400, 403)
    assert f"[{rule}]" in answer.text
    assert get_user(world.store, "tom").roles == {"researcher"}


# -- projects ------------------------------------------------------------------------------


def test_projects_list_and_project_page(world: World, client: TestClient, project: str) -> None:
    info = get_project(world.store, project)
    text = page(client, "sam", "admin/projects").text
    row = re.search(rf'admin/projects/{project}">.*?</tr>', text, re.S)
    assert row is not None
    assert "active" in row.group(0)
    assert str(info.expires) in row.group(0)
    assert "ada (PI), ben" in row.group(0)
    text = page(client, "sam", f"admin/projects/{project}").text
    assert "lth, elht" in text  # umbh declined: not in the scope
    assert "umbh" not in text
    assert "person_id, year_of_birth" in text
    assert "2018-01-01 to 2024-12-31" in text
    assert 'value="suspend"' in text
    assert 'value="revoke"' in text
    assert 'value="reactivate"' not in text  # an active project cannot be reinstated


def test_unknown_project_looks_missing(client: TestClient) -> None:
    refused(page(client, "sam", "admin/projects/no-such"), 404, "project.unknown")
    answer = post(
        client, "sam", "admin/projects/no-such/status", {"action": "revoke", "reason": "x"}
    )
    refused(answer, 404, "project.unknown")


def _status(client: TestClient, slug: str, action: str, reason: str, **more: str) -> httpx.Response:
    data = [("action", action), ("reason", reason), *more.items()]
    return post(client, "sam", f"admin/projects/{slug}/status", data)


def test_suspend_asks_to_confirm_then_takes_effect_at_once(
    world: World, client: TestClient, project: str
) -> None:
    reason = "Ethics approval <lapsed> pending renewal"
    answer = _status(client, project, "suspend", reason)
    assert answer.status_code == 200
    text = answer.text
    assert f"Suspend project {project}?" in text
    assert "Ethics approval &lt;lapsed&gt; pending renewal" in text
    assert 'name="confirm" value="yes"' in text
    assert get_project(world.store, project).status == "active"  # not yet
    answer = _status(client, project, "suspend", reason, confirm="yes")
    assert answer.status_code == 303
    assert get_project(world.store, project).status == "suspended"
    with pytest.raises(AccessDenied) as refusal:
        check_project_access(world.store, "ada", project)
    assert refusal.value.rule == "access.suspended"
    assert (
        "sam",
        "project.suspend",
        "ok",
        {"from": "active", "to": "suspended", "reason": reason},
    ) in events(world, f"project:{project}")
    text = page(client, "sam", f"admin/projects/{project}?done=suspend").text
    assert "The project was suspended" in text
    assert 'value="reactivate"' in text  # a suspended project can be reinstated
    _status(client, project, "reactivate", "Renewed", confirm="yes")
    assert check_project_access(world.store, "ada", project).version == 1


def test_revoke_is_final(world: World, client: TestClient, project: str) -> None:
    answer = _status(client, project, "revoke", "Data breach", confirm="yes")
    assert answer.status_code == 303
    assert get_project(world.store, project).status == "revoked"
    text = page(client, "sam", f"admin/projects/{project}").text
    assert "Revocation is final" in text
    answer = _status(client, project, "reactivate", "oops", confirm="yes")
    refused(answer, 409, "project.transition")


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_status_change_needs_a_reason(
    world: World, client: TestClient, project: str, reason: str
) -> None:
    for confirm in ("", "yes"):
        text = refused(
            _status(client, project, "revoke", reason, confirm=confirm),
            400,
            "project.reason-required",
        )
        assert 'value="revoke" checked' in text  # the choice is kept
    assert get_project(world.store, project).status == "active"
    assert ("sam", "project.revoke", "refused", {}) in events(world, f"project:{project}")


def test_an_unknown_action_is_refused(world: World, client: TestClient, project: str) -> None:
    refused(_status(client, project, "delete", "because"), 400, "project.invalid-action")
    assert get_project(world.store, project).status == "active"


@pytest.mark.parametrize("who", ["ada", "kim", "tom"])
def test_only_an_admin_changes_a_status(
    world: World, client: TestClient, project: str, who: str
) -> None:
    answer = post(
        client,
        who,
        f"admin/projects/{project}/status",
        {"action": "revoke", "reason": "x", "confirm": "yes"},
    )
    refused(answer, 403, "committee.admin-only")
    assert get_project(world.store, project).status == "active"
    assert (who, "project.revoke", "refused", {}) in events(world, f"project:{project}")


def test_an_overlong_reference_is_refused_with_what_was_typed_kept(
    world: World, client: TestClient
) -> None:
    ref = "R" * 201
    answer = post(
        client, "sam", "admin/users/una/accreditation", {"until": "2027-03-31", "ref": ref}
    )
    text = refused(answer, 400, "user.invalid-ref")
    assert 'value="2027-03-31"' in text
    assert f'value="{ref}"' in text
    assert get_user(world.store, "una").accredited_until is None


def test_an_admin_cannot_remove_their_own_admin_role(world: World, client: TestClient) -> None:
    answer = post(client, "sam", "admin/users/sam/roles", {"role": "admin", "op": "remove"})
    refused(answer, 400, "user.own-admin")
    assert "admin" in get_user(world.store, "sam").roles


def test_a_project_past_its_expiry_can_only_be_revoked(
    world: World, client: TestClient, project: str
) -> None:
    _, scope = scope_of(world.store, project)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    add_version(world.store, "sam", project, {**scope.to_dict(), "expires": str(yesterday)})
    text = page(client, "sam", f"admin/projects/{project}").text
    assert "expired" in text
    assert 'value="revoke"' in text
    assert 'value="suspend"' not in text
    assert 'value="reactivate"' not in text


def test_a_project_without_a_scope_and_one_with_every_column(
    world: World, client: TestClient
) -> None:
    create_project(world.store, "sam", "bare", title="No scope yet")
    text = page(client, "sam", "admin/projects/bare").text
    assert "No approved scope yet." in text
    create_project(
        world.store,
        "sam",
        "wide",
        title="Everything",
        scope={"project": "wide", "access": "rows", "tables": {"person": "*"}},
    )
    text = page(client, "sam", "admin/projects/wide").text
    assert "person_id, gender_concept_id, year_of_birth, month_of_birth" in text  # "*" spelt out
    assert "day_of_birth" not in text  # never exposed, whatever the scope says
    assert "every node" in text
    assert "any date" in text
    assert "every person" in text
    listing = page(client, "sam", "admin/projects").text
    assert "no scope" in listing
