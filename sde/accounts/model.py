"""What the account services hand out: frozen snapshots of users and projects, and constants.

Services read rows inside a transaction and return these; nothing outside
:mod:`sde.accounts` sees a registry row. Snapshots hold no secret: a user's password
hash and TOTP secret are reported only as present or absent.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

ROLES: tuple[str, ...] = ("researcher", "output-checker", "committee", "custodian", "admin")
#: Roles that may log in without current accreditation (they do not see data as researchers).
STAFF_ROLES: frozenset[str] = frozenset({"output-checker", "committee", "custodian", "admin"})
PROJECT_STATUSES: tuple[str, ...] = ("active", "suspended", "revoked", "expired")
MEMBER_ROLES: tuple[str, ...] = ("pi", "member")

#: Failed logins in a row that lock an account, and for how long (API.md).
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12

USERNAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: A project slug, as in a scope file.
SLUG = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones, stored as UTC).

    >>> utc(dt.datetime(2025, 1, 1, 12)).isoformat()
    '2025-01-01T12:00:00+00:00'
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def now_utc(now: dt.datetime | None = None) -> dt.datetime:
    """``now`` (made aware, UTC), or the current time."""
    return utc(now) if now is not None else dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class UserInfo:
    """A user as the services see them; no secret, only whether one is set."""

    username: str
    display_name: str
    email: str
    organisation: str
    roles: frozenset[str]
    #: Nodes the user is custodian of.
    nodes: frozenset[str]
    accredited_until: dt.date | None
    accreditation_ref: str | None
    daa_signed_at: dt.datetime | None
    daa_version: str | None
    has_password: bool
    has_totp: bool
    failed_logins: int
    locked_until: dt.datetime | None
    last_login_at: dt.datetime | None
    created_at: dt.datetime

    def is_accredited(self, today: dt.date) -> bool:
        """Safe-researcher accreditation valid on ``today`` (its expiry day included)."""
        return self.accredited_until is not None and today <= self.accredited_until

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)

    def is_locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly; dates as ISO text."""
        return {
            "username": self.username,
            "display_name": self.display_name,
            "email": self.email,
            "organisation": self.organisation,
            "roles": sorted(self.roles),
            "nodes": sorted(self.nodes),
            "accredited_until": _iso(self.accredited_until),
            "accreditation_ref": self.accreditation_ref,
            "daa_signed_at": _iso(self.daa_signed_at),
            "daa_version": self.daa_version,
            "has_password": self.has_password,
            "has_totp": self.has_totp,
            "failed_logins": self.failed_logins,
            "locked_until": _iso(self.locked_until),
            "last_login_at": _iso(self.last_login_at),
        }


@dataclass(frozen=True)
class Member:
    username: str
    role: str


@dataclass(frozen=True)
class ProjectInfo:
    """A project: its stored status, expiry, newest approval version and members."""

    slug: str
    title: str
    status: str
    status_reason: str | None
    expires: dt.date | None
    #: Newest approval version (0: none yet, so no scope).
    version: int
    members: tuple[Member, ...]
    access: str | None

    def effective_status(self, today: dt.date) -> str:
        """The status in force: an active project past its expiry is ``expired``."""
        if self.status == "active" and self.expires is not None and today > self.expires:
            return "expired"
        return self.status

    def member_names(self) -> frozenset[str]:
        return frozenset(m.username for m in self.members)

    def to_dict(self, today: dt.date) -> dict[str, Any]:
        return {
            "project": self.slug,
            "title": self.title,
            "status": self.effective_status(today),
            "status_reason": self.status_reason,
            "expires": _iso(self.expires),
            "version": self.version,
            "access": self.access,
            "members": [{"user": m.username, "role": m.role} for m in self.members],
        }


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None
