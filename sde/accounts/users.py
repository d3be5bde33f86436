"""Users: create and change them, their roles, custodian nodes, accreditation and secrets.

Every function is one audited change (``actor`` is who makes it; the audit object is
``user:<username>``) or a read. Audit details never hold a password, a hash or a TOTP
secret. Unknown users are :class:`~sde.errors.InvalidInput` with rule ``user.unknown``.

>>> from sde.registry import open_registry
>>> store = AccountStore(open_registry("sqlite://"), secret="s" * 32)
>>> ada = create_user(store, "root", "ada", display_name="Ada Lovelace",
...     email="ada@example.nhs.uk", organisation="Lancaster University", roles=["researcher"])
>>> sorted(ada.roles), ada.has_password
(['researcher'], False)
>>> set_roles(store, "root", "ada", ["admin", "root"])
Traceback (most recent call last):
...
sde.errors.InvalidInput: unknown role 'root': roles are researcher, output-checker, ...
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select

from sde.accounts import crypto
from sde.accounts.model import (
    EMAIL,
    MIN_PASSWORD_LENGTH,
    NODE,
    ROLES,
    USERNAME,
    UserInfo,
    now_utc,
)
from sde.accounts.store import AccountStore, Tx, require_user, user_info
from sde.errors import InvalidInput
from sde.registry.people import NodeCustodian, User, UserRole


@dataclass(frozen=True)
class TotpEnrolment:
    """A new TOTP secret, to show the user once (text and ``otpauth://`` URI)."""

    secret: str
    uri: str

    def __repr__(self) -> str:  # never printed by accident
        return "TotpEnrolment(<secret hidden>)"


def create_user(
    store: AccountStore,
    actor: str,
    username: str,
    *,
    display_name: str,
    email: str,
    organisation: str,
    roles: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> UserInfo:
    """A new user with ``roles`` (no password, no TOTP, not accredited yet)."""
    if not USERNAME.match(username):
        raise InvalidInput(
            "user.invalid-name",
            f"{username!r} is not a valid username (lowercase letter first, then lowercase "
            "letters, digits, - or _; at most 32 characters)",
        )
    wanted = _roles(roles)
    if "custodian" in wanted:
        raise _custodian_needs_nodes()
    _check_details(display_name, email, organisation)
    with store.write() as tx:
        if tx.session.get(User, username) is not None:
            raise InvalidInput("user.exists", f"user {username!r} already exists")
        tx.session.add(
            User(
                username=username,
                display_name=display_name.strip(),
                email=email.strip(),
                organisation=organisation.strip(),
                failed_logins=0,
                created_at=now_utc(now),
            )
        )
        tx.session.flush()
        tx.session.add_all(UserRole(username=username, role=r) for r in sorted(wanted))
        details = {"email": email, "organisation": organisation, "roles": sorted(wanted)}
        tx.audit(actor, "user.create", f"user:{username}", details=details)
        return _info(tx, username)


def update_user(
    store: AccountStore,
    actor: str,
    username: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    organisation: str | None = None,
) -> UserInfo:
    """Change a user's details; ``None`` keeps a value."""
    with store.write() as tx:
        row = require_user(tx.session, username)
        new = {
            "display_name": display_name if display_name is not None else row.display_name,
            "email": email if email is not None else row.email,
            "organisation": organisation if organisation is not None else row.organisation,
        }
        _check_details(new["display_name"], new["email"], new["organisation"])
        changed = {k: v.strip() for k, v in new.items() if v.strip() != getattr(row, k)}
        for key, value in changed.items():
            setattr(row, key, value)
        tx.audit(actor, "user.update", f"user:{username}", details=changed)
        return _info(tx, username)


def set_roles(store: AccountStore, actor: str, username: str, roles: Iterable[str]) -> UserInfo:
    """Replace a user's roles. ``custodian`` comes with nodes (:func:`grant_custodian`):
    it may be kept here, not added; dropping it revokes every node."""
    wanted = _roles(roles)
    with store.write() as tx:
        before = _info(tx, username)
        if "custodian" in wanted and not before.nodes:
            raise _custodian_needs_nodes()
        tx.session.execute(delete(UserRole).where(UserRole.username == username))
        tx.session.add_all(UserRole(username=username, role=r) for r in sorted(wanted))
        if "custodian" not in wanted:
            tx.session.execute(delete(NodeCustodian).where(NodeCustodian.username == username))
        details = {"from": sorted(before.roles), "to": sorted(wanted)}
        tx.audit(actor, "user.roles", f"user:{username}", details=details)
        return _info(tx, username)


def grant_custodian(store: AccountStore, actor: str, username: str, node: str) -> UserInfo:
    """Make the user a custodian of ``node`` (and give them the ``custodian`` role)."""
    if not NODE.match(node):
        raise InvalidInput("user.invalid-node", f"{node!r} is not a valid node name")
    with store.write() as tx:
        info = _info(tx, username)
        if node not in info.nodes:
            tx.session.add(NodeCustodian(node=node, username=username))
        if "custodian" not in info.roles:
            tx.session.add(UserRole(username=username, role="custodian"))
        tx.audit(actor, "user.custodian.grant", f"user:{username}", details={"node": node})
        return _info(tx, username)


def revoke_custodian(store: AccountStore, actor: str, username: str, node: str) -> UserInfo:
    """Take ``node`` from the user's custodianship (the role goes with the last node)."""
    with store.write() as tx:
        info = _info(tx, username)
        if node not in info.nodes:
            raise InvalidInput(
                "user.not-custodian", f"{username!r} is not a custodian of node {node!r}"
            )
        tx.session.execute(
            delete(NodeCustodian).where(
                NodeCustodian.username == username, NodeCustodian.node == node
            )
        )
        if info.nodes == {node}:
            tx.session.execute(
                delete(UserRole).where(UserRole.username == username, UserRole.role == "custodian")
            )
        tx.audit(actor, "user.custodian.revoke", f"user:{username}", details={"node": node})
        return _info(tx, username)


def record_accreditation(
    store: AccountStore, actor: str, username: str, until: dt.date, ref: str | None = None
) -> UserInfo:
    """Record safe-researcher accreditation valid through ``until`` (a past date ends it)."""
    with store.write() as tx:
        row = require_user(tx.session, username)
        row.accredited_until = until
        row.accreditation_ref = ref
        details = {"until": until.isoformat(), "ref": ref}
        tx.audit(actor, "user.accredit", f"user:{username}", details=details)
        return _info(tx, username)


def record_daa(
    store: AccountStore,
    actor: str,
    username: str,
    version: str,
    *,
    signed_at: dt.datetime | None = None,
) -> UserInfo:
    """Record that the user signed version ``version`` of the data access agreement."""
    if not version.strip():
        raise InvalidInput("user.daa-version", "name the version of the agreement signed")
    with store.write() as tx:
        row = require_user(tx.session, username)
        row.daa_signed_at = now_utc(signed_at)
        row.daa_version = version.strip()
        details = {"version": row.daa_version, "signed_at": row.daa_signed_at.isoformat()}
        tx.audit(actor, "user.daa", f"user:{username}", details=details)
        return _info(tx, username)


def set_password(store: AccountStore, actor: str, username: str, password: str) -> UserInfo:
    """Set the user's password (stored as an argon2id hash only)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            "user.weak-password",
            f"a password must have at least {MIN_PASSWORD_LENGTH} characters",
        )
    hashed = store.passwords.hash(password)
    with store.write() as tx:
        require_user(tx.session, username).password_hash = hashed
        tx.audit(actor, "user.password", f"user:{username}")
        return _info(tx, username)


def enrol_totp(store: AccountStore, actor: str, username: str) -> TotpEnrolment:
    """A new TOTP secret for the user (replacing any other); stored encrypted.

    The secret is returned once, to be shown to the user; it cannot be read back.
    """
    secret = crypto.new_totp_secret()
    token = store.cipher.encrypt(secret)
    with store.write() as tx:
        row = require_user(tx.session, username)
        row.totp_secret = token
        row.totp_last_step = None
        tx.audit(actor, "user.totp", f"user:{username}")
    return TotpEnrolment(secret, crypto.totp_uri(secret, username))


def unlock(store: AccountStore, actor: str, username: str) -> UserInfo:
    """Lift a failed-login lock and reset the failure count."""
    with store.write() as tx:
        row = require_user(tx.session, username)
        details = {"failed_logins": row.failed_logins, "was_locked": row.locked_until is not None}
        row.failed_logins = 0
        row.locked_until = None
        tx.audit(actor, "user.unlock", f"user:{username}", details=details)
        return _info(tx, username)


def get_user(store: AccountStore, username: str) -> UserInfo:
    with store.read() as session:
        return user_info(session, require_user(session, username))


def list_users(store: AccountStore) -> list[UserInfo]:
    with store.read() as session:
        rows = session.scalars(select(User).order_by(User.username)).all()
        return [user_info(session, row) for row in rows]


def custodians_of(store: AccountStore, node: str) -> list[str]:
    """Usernames of ``node``'s custodians."""
    with store.read() as session:
        query = select(NodeCustodian.username).where(NodeCustodian.node == node)
        return sorted(session.scalars(query))


def _info(tx: Tx, username: str) -> UserInfo:
    tx.session.flush()
    return user_info(tx.session, require_user(tx.session, username))


def _roles(roles: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(roles)
    for role in sorted(wanted):
        if role not in ROLES:
            raise InvalidInput(
                "user.invalid-role", f"unknown role {role!r}: roles are {', '.join(ROLES)}"
            )
    return wanted


def _custodian_needs_nodes() -> InvalidInput:
    return InvalidInput(
        "user.custodian-nodes",
        "the custodian role comes with nodes: grant one with `sde users custodian USER "
        "--grant NODE`",
    )


def _check_details(display_name: str, email: str, organisation: str) -> None:
    if not display_name.strip():
        raise InvalidInput("user.invalid-name", "a display name is required")
    if not EMAIL.match(email.strip()):
        raise InvalidInput("user.invalid-email", f"{email!r} is not an email address")
    if not organisation.strip():
        raise InvalidInput("user.invalid-organisation", "an organisation is required")
