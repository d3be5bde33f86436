"""Logging in: password, TOTP code, lockout and who may enter (API.md, "Logging in").

:func:`verify_login` is what the hub's authenticator calls. It refuses with
:class:`~sde.errors.AccessDenied` and one of these rules:

* ``auth.bad-credentials``: unknown user, wrong password, wrong or reused code, or no
  password or code set up. One message for all, so nothing tells which was wrong, and an
  unknown user costs a password hash's time too.
* ``auth.locked``: :data:`~sde.accounts.model.MAX_FAILED_LOGINS` failures in a row lock the
  account for :data:`~sde.accounts.model.LOCKOUT`; while locked every attempt is refused
  without looking at the password (so a lock cannot be used to test passwords).
* ``auth.not-accredited``: the right secrets, but no current accreditation and no staff role.

A code is accepted once: the time step it belongs to must be newer than the last one
accepted for that user. Every attempt, refused or not, is an ``auth.login`` audit entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sde.accounts import crypto
from sde.accounts.access import active_projects_of
from sde.accounts.model import LOCKOUT, MAX_FAILED_LOGINS, UserInfo, now_utc, utc
from sde.accounts.store import AccountStore, Tx, find_user, user_info
from sde.errors import AccessDenied
from sde.registry.people import User

BAD_CREDENTIALS = "auth.bad-credentials"
_BAD_MESSAGE = "wrong username, password or one-time code"


@dataclass(frozen=True)
class LoginResult:
    """A successful login: who, with which roles, and which projects they may use now."""

    username: str
    roles: frozenset[str]
    staff: bool
    accredited: bool
    #: Slugs of the projects the user may use now (a notebook server needs one).
    projects: tuple[str, ...]

    @property
    def may_spawn(self) -> bool:
        return bool(self.projects)


def verify_login(
    store: AccountStore,
    username: str,
    password: str,
    otp: str,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Check a login attempt at ``now``; the result, or AccessDenied (rules above)."""
    at = now_utc(now)
    with store.write() as tx:
        outcome = _attempt(tx, store, username, password, otp, at)
    if isinstance(outcome, AccessDenied):
        raise outcome
    projects = active_projects_of(store, username, at)
    return LoginResult(
        username=username,
        roles=outcome.roles,
        staff=outcome.is_staff,
        accredited=outcome.is_accredited(at.date()),
        projects=tuple(p.slug for p in projects),
    )


def _attempt(
    tx: Tx, store: AccountStore, username: str, password: str, otp: str, at: dt.datetime
) -> UserInfo | AccessDenied:
    """Record the attempt (in ``tx``); the user, or the refusal to raise after commit."""
    obj = f"user:{username[:64]}"
    row = find_user(tx.session, username)
    if row is None:
        store.passwords.check(None, password)  # as long as for a known user
        tx.audit(username[:64], "auth.login", obj, outcome="refused", rule=BAD_CREDENTIALS)
        return AccessDenied(BAD_CREDENTIALS, _BAD_MESSAGE)
    if row.locked_until is not None and at < utc(row.locked_until):
        return _locked(tx, row, utc(row.locked_until))
    if row.locked_until is not None:  # the lock has run out: a fresh start
        row.locked_until, row.failed_logins = None, 0
    step = _check_secrets(store, row, password, otp, at)
    if step is None:
        return _failed(tx, row, at)
    row.failed_logins, row.totp_last_step = 0, step
    if row.password_hash is not None and store.passwords.needs_rehash(row.password_hash):
        row.password_hash = store.passwords.hash(password)
    info = user_info(tx.session, row)
    if not (info.is_staff or info.is_accredited(at.date())):
        tx.audit(username, "auth.login", obj, outcome="refused", rule="auth.not-accredited")
        return AccessDenied(
            "auth.not-accredited",
            "your safe-researcher accreditation is missing or has expired: ask the "
            "workbench's administrators to record your renewal",
        )
    row.last_login_at = at
    tx.audit(username, "auth.login", obj, details={"roles": sorted(info.roles)})
    return info


def _check_secrets(
    store: AccountStore, row: User, password: str, otp: str, at: dt.datetime
) -> int | None:
    """The TOTP step matched if both the password and the code are right, else None."""
    password_ok = store.passwords.check(row.password_hash, password)
    if row.totp_secret is None:
        return None
    secret = store.cipher.decrypt(row.totp_secret)
    step = crypto.matching_step(
        secret, otp, crypto.totp_step(at.timestamp()), after=row.totp_last_step
    )
    return step if password_ok else None


def _failed(tx: Tx, row: User, at: dt.datetime) -> AccessDenied:
    row.failed_logins += 1
    locked = row.failed_logins >= MAX_FAILED_LOGINS
    if locked:
        row.locked_until = at + LOCKOUT
    details = {"failures": row.failed_logins, "locked": locked}
    tx.audit(
        row.username,
        "auth.login",
        f"user:{row.username}",
        outcome="refused",
        rule=BAD_CREDENTIALS,
        details=details,
    )
    return AccessDenied(BAD_CREDENTIALS, _BAD_MESSAGE)


def _locked(tx: Tx, row: User, until: dt.datetime) -> AccessDenied:
    tx.audit(
        row.username, "auth.login", f"user:{row.username}", outcome="refused", rule="auth.locked"
    )
    return AccessDenied(
        "auth.locked",
        f"too many failed logins: the account is locked until {until:%H:%M} UTC",
    )
