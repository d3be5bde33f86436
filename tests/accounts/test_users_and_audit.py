"""Users' roles, custodian nodes and details; every change audited in its own transaction."""

from __future__ import annotations

import datetime as dt

import pytest

from sde.accounts import (
    AccountStore,
    add_member,
    add_version,
    change_status,
    create_project,
    create_user,
    custodians_of,
    get_user,
    grant_custodian,
    list_users,
    remove_member,
    revoke_custodian,
    set_password,
    set_roles,
    unlock,
    update_user,
)
from sde.audit import AuditLog
from sde.errors import InvalidInput
from tests.accounts.conftest import ADMIN, NOW, make_user

SCOPE = {"project": "htn", "access": "rows", "tables": {"person": "*"}, "expires": "2027-12-31"}


def _actions(store: AccountStore, since: int) -> list[tuple[str, str | None, str]]:
    return [(e.action, e.object, e.user) for e in AuditLog(store.engine).entries()[since:]]


def test_every_change_writes_one_audit_event(store: AccountStore) -> None:
    log = AuditLog(store.engine)
    start = log.count()
    make_user(store, "ada", nodes=("lth",))
    update_user(store, ADMIN, "ada", organisation="UCLan")
    set_roles(store, ADMIN, "ada", ["researcher", "custodian"])
    revoke_custodian(store, ADMIN, "ada", "lth")
    unlock(store, ADMIN, "ada")
    create_project(store, ADMIN, "htn", title="Hypertension", scope=SCOPE, now=NOW)
    add_version(store, ADMIN, "htn", SCOPE, note="amendment", now=NOW)
    add_member(store, ADMIN, "htn", "ada", role="pi")
    change_status(store, ADMIN, "htn", "suspend", "ethics", now=NOW)
    remove_member(store, ADMIN, "htn", "ada")
    assert [a for a, _, _ in _actions(store, start)] == [
        "user.create",
        "user.custodian.grant",
        "user.password",
        "user.totp",
        "user.accredit",
        "user.daa",
        "user.update",
        "user.roles",
        "user.custodian.revoke",
        "user.unlock",
        "project.create",
        "project.version",
        "project.version",
        "project.member.add",
        "project.suspend",
        "project.member.remove",
    ]
    assert {who for _, _, who in _actions(store, start)} == {ADMIN}
    assert {obj for _, obj, _ in _actions(store, start)} == {"user:ada", "project:htn"}
    assert log.verify().ok


def test_a_refused_change_writes_nothing(store: AccountStore) -> None:
    make_user(store, "ada")
    before = AuditLog(store.engine).count()
    with pytest.raises(InvalidInput) as info:
        create_user(store, ADMIN, "ada", display_name="A", email="a@x.org", organisation="L")
    assert info.value.rule == "user.exists"
    with pytest.raises(InvalidInput):
        set_password(store, ADMIN, "ada", "short")
    with pytest.raises(InvalidInput):
        add_member(store, ADMIN, "nope", "ada")
    assert AuditLog(store.engine).count() == before


def test_audit_details_hold_no_secret(store: AccountStore) -> None:
    ada = make_user(store, "ada")
    details = " ".join(str(e.details) for e in AuditLog(store.engine).entries())
    assert ada.password not in details
    assert ada.totp_secret not in details
    assert "argon2" not in details


def test_custodian_role_follows_nodes(store: AccountStore) -> None:
    make_user(store, "cat", roles=("researcher",))
    with pytest.raises(InvalidInput) as info:
        set_roles(store, ADMIN, "cat", ["custodian"])
    assert info.value.rule == "user.custodian-nodes"
    grant_custodian(store, ADMIN, "cat", "lth")
    user = grant_custodian(store, ADMIN, "cat", "elht")
    assert (user.roles, user.nodes) == ({"researcher", "custodian"}, {"lth", "elht"})
    assert custodians_of(store, "lth") == ["cat"]
    user = revoke_custodian(store, ADMIN, "cat", "lth")
    assert "custodian" in user.roles
    user = revoke_custodian(store, ADMIN, "cat", "elht")
    assert (user.roles, user.nodes) == ({"researcher"}, frozenset())
    grant_custodian(store, ADMIN, "cat", "umbh")
    user = set_roles(store, ADMIN, "cat", ["admin"])  # dropping the role drops the nodes
    assert (user.roles, user.nodes) == ({"admin"}, frozenset())
    assert custodians_of(store, "umbh") == []


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("username", "Ada", "user.invalid-name"),
        ("username", "1ada", "user.invalid-name"),
        ("username", "a" * 33, "user.invalid-name"),
        ("email", "ada-at-example", "user.invalid-email"),
        ("organisation", " ", "user.invalid-organisation"),
        ("roles", ["root"], "user.invalid-role"),
        ("roles", ["custodian"], "user.custodian-nodes"),
    ],
)
def test_bad_user_details_are_refused(
    store: AccountStore, field: str, value: object, rule: str
) -> None:
    given: dict[str, object] = {
        "username": "ada",
        "display_name": "Ada",
        "email": "ada@example.org",
        "organisation": "LU",
        "roles": ["researcher"],
    }
    given[field] = value
    username = str(given.pop("username"))
    with pytest.raises(InvalidInput) as info:
        create_user(store, ADMIN, username, **given)  # type: ignore[arg-type]
    assert info.value.rule == rule
    assert list_users(store) == []


def test_unknown_users_are_named(store: AccountStore) -> None:
    for call in (
        lambda: get_user(store, "ghost"),
        lambda: unlock(store, ADMIN, "ghost"),
        lambda: grant_custodian(store, ADMIN, "ghost", "lth"),
    ):
        with pytest.raises(InvalidInput, match="no user 'ghost'") as info:
            call()
        assert info.value.rule == "user.unknown"


def test_snapshots_hide_secrets_and_dates_are_utc(store: AccountStore) -> None:
    make_user(store, "ada")
    user = get_user(store, "ada")
    assert user.has_password
    assert user.has_totp
    assert user.daa_signed_at == NOW - dt.timedelta(days=30)
    assert user.created_at.tzinfo is not None
    shown = str(user.to_dict())
    assert "argon2" not in shown
    assert "gAAAA" not in shown
