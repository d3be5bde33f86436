"""Projects: create them, add approval versions (each a scope), change status, members.

A project's status moves only along :data:`TRANSITIONS` (workflow as data), each move with
a reason, audited as ``project.<action>``. An approval version holds the compiled scope
file; the newest is the project's scope and privacy budget, and its ``expires`` becomes
the project's expiry. ``revoked`` is final.

>>> from sde.registry import open_registry
>>> from sde.accounts.users import create_user
>>> store = AccountStore(open_registry("sqlite://"))
>>> p = create_project(store, "root", "htn", title="Hypertension",
...     scope={"project": "htn", "access": "rows", "tables": {"person": "*"},
...            "expires": "2030-01-01"})
>>> p.status, p.version, p.expires
('active', 1, datetime.date(2030, 1, 1))
>>> change_status(store, "root", "htn", "suspend", "ethics review").status
'suspended'
>>> change_status(store, "root", "htn", "expire", "ended early").status
'expired'
>>> change_status(store, "root", "htn", "suspend", "again")
Traceback (most recent call last):
...
sde.errors.InvalidTransition: project htn is expired: it cannot be suspended (from active only)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from sde.accounts.model import MEMBER_ROLES, SLUG, ProjectInfo, now_utc
from sde.accounts.store import (
    AccountStore,
    Tx,
    latest_version,
    project_info,
    require_project,
    require_user,
)
from sde.errors import InvalidInput, InvalidTransition
from sde.registry.committee import TEXT_LIMITS, text_problem
from sde.registry.people import UserRole
from sde.registry.projects import ApprovalVersion, Membership, Project
from sde.scope import Scope

#: action -> (statuses it may start from, status it ends in).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "suspend": (frozenset({"active"}), "suspended"),
    "reactivate": (frozenset({"suspended", "expired"}), "active"),
    "expire": (frozenset({"active", "suspended"}), "expired"),
    "revoke": (frozenset({"active", "suspended", "expired"}), "revoked"),
}
_PAST = {"suspend": "suspended", "reactivate": "reactivated", "expire": "expired"}
ScopeSource = Scope | Mapping[str, Any] | str | Path


def create_project(
    store: AccountStore,
    actor: str,
    slug: str,
    *,
    title: str,
    scope: ScopeSource | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> ProjectInfo:
    """A new, active project; with ``scope``, its first approval version."""
    compiled = Scope.load(scope) if scope is not None else None
    if not SLUG.match(slug):
        raise InvalidInput(
            "project.invalid-slug",
            f"{slug!r} is not a project slug (lowercase letters, digits and -, letter first)",
        )
    if not title.strip():
        raise InvalidInput("project.invalid-title", "a project needs a title")
    with store.write() as tx:
        return create_project_in(tx, actor, slug, title.strip(), compiled, note, now_utc(now))


def create_project_in(
    tx: Tx,
    actor: str,
    slug: str,
    title: str,
    scope: Scope | None,
    note: str | None,
    at: dt.datetime,
) -> ProjectInfo:
    """:func:`create_project` inside the caller's transaction (the committee provisions so)."""
    if tx.session.get(Project, slug) is not None:
        raise InvalidInput("project.exists", f"project {slug!r} already exists")
    tx.session.add(
        Project(
            slug=slug,
            title=title,
            status="active",
            status_changed_at=at,
            created_at=at,
            created_by=actor,
        )
    )
    tx.audit(actor, "project.create", f"project:{slug}", project=slug, details={"title": title})
    if scope is not None:
        add_version_in(tx, actor, slug, scope, note, at)
    return project_info(tx.session, require_project(tx.session, slug))


def add_version(
    store: AccountStore,
    actor: str,
    slug: str,
    scope: ScopeSource,
    *,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> ProjectInfo:
    """Approve a new version (N+1) of the project's scope; it takes effect at once."""
    compiled = Scope.load(scope)
    with store.write() as tx:
        row = require_project(tx.session, slug)
        if row.status == "revoked":
            raise InvalidTransition(
                "project.revoked", f"project {slug} is revoked: it cannot be approved again"
            )
        add_version_in(tx, actor, slug, compiled, note, now_utc(now))
        return project_info(tx.session, row)


def add_version_in(
    tx: Tx, actor: str, slug: str, scope: Scope, note: str | None, at: dt.datetime
) -> int:
    if scope.project != slug:
        raise InvalidInput(
            "project.scope-mismatch",
            f"the scope is for project {scope.project!r}, not {slug!r}",
        )
    newest = latest_version(tx.session, slug)
    version = newest.version + 1 if newest is not None else 1
    canonical = json.dumps(scope.to_dict(), sort_keys=True, separators=(",", ":"))
    tx.session.add(
        ApprovalVersion(
            project=slug,
            version=version,
            scope=canonical,
            scope_sha256=scope.version,
            created_at=at,
            created_by=actor,
            note=note,
        )
    )
    if scope.expires is not None:
        require_project(tx.session, slug).expires = scope.expires
    details = {"version": version, "scope_sha256": scope.version, "note": note}
    tx.audit(actor, "project.version", f"project:{slug}", project=slug, details=details)
    return version


def scope_of(store: AccountStore, slug: str, version: int | None = None) -> tuple[int, Scope]:
    """The project's scope at ``version`` (default: the newest) and that version's number."""
    with store.read() as session:
        require_project(session, slug)
        if version is None:
            row = latest_version(session, slug)
        else:
            row = session.get(ApprovalVersion, (slug, version))
        if row is None:
            which = "any approval version" if version is None else f"a version {version}"
            raise InvalidInput("project.no-scope", f"project {slug} has no {which}")
        return row.version, Scope.from_dict(json.loads(row.scope))


def status_reason(action: str, reason: str) -> str:
    """The reason for a status change, stripped: required, at most
    ``TEXT_LIMITS["status_reason"]`` characters, no control characters but newlines and
    tabs. The one check of every caller (the JSON API, the administrators' pages, the
    command line), refusing with the field ``reason`` named.

    >>> status_reason("revoke", "  breach ")
    'breach'
    >>> status_reason("revoke", "r" * 5_001)
    Traceback (most recent call last):
    ...
    sde.errors.InvalidInput: the reason: at most 5,000 characters (5,001 given)
    """
    text = reason.strip()
    if not text:
        verb = "reinstate" if action == "reactivate" else action
        raise InvalidInput(
            "project.reason-required", f"say why the project is to {verb}", field="reason"
        )
    problem = text_problem(text, TEXT_LIMITS["status_reason"])
    if problem is not None:
        raise InvalidInput("project.invalid-reason", f"the reason: {problem}", field="reason")
    return text


def change_status(
    store: AccountStore,
    actor: str,
    slug: str,
    action: str,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> ProjectInfo:
    """Move the project along :data:`TRANSITIONS` (``suspend``, ``reactivate``, ``expire``,
    ``revoke``), recording ``reason``."""
    if action not in TRANSITIONS:
        raise InvalidInput("project.invalid-action", f"unknown project action {action!r}")
    reason = status_reason(action, reason)
    sources, target = TRANSITIONS[action]
    at = now_utc(now)
    with store.write() as tx:
        row = require_project(tx.session, slug)
        if row.status not in sources:
            raise InvalidTransition(
                "project.transition",
                f"project {slug} is {row.status}: it cannot be {_PAST.get(action, action + 'd')}"
                f" (from {' or '.join(sorted(sources))} only)",
            )
        if target == "active" and row.expires is not None and at.date() > row.expires:
            raise InvalidTransition(
                "project.past-expiry",
                f"project {slug} expired on {row.expires}: approve a version with a later "
                "expiry before reactivating it",
            )
        details = {"from": row.status, "to": target, "reason": reason.strip()}
        row.status, row.status_reason, row.status_changed_at = target, reason.strip(), at
        tx.audit(actor, f"project.{action}", f"project:{slug}", project=slug, details=details)
        return project_info(tx.session, row)


def expire_due(store: AccountStore, actor: str, *, now: dt.datetime | None = None) -> list[str]:
    """Mark every active or suspended project past its expiry ``expired``; their slugs."""
    today = now_utc(now).date()
    with store.read() as session:
        due = session.scalars(
            select(Project.slug).where(
                Project.status.in_(TRANSITIONS["expire"][0]), Project.expires < today
            )
        ).all()
    for slug in due:
        change_status(store, actor, slug, "expire", f"expiry date passed ({today})", now=now)
    return list(due)


def add_member(
    store: AccountStore,
    actor: str,
    slug: str,
    username: str,
    *,
    role: str = "member",
    now: dt.datetime | None = None,
) -> ProjectInfo:
    """Add a researcher to the project (``role`` ``member`` or ``pi``), or change their role."""
    if role not in MEMBER_ROLES:
        raise InvalidInput("project.invalid-member-role", "a member's role is pi or member")
    with store.write() as tx:
        return add_member_in(tx, actor, slug, username, role, now_utc(now))


def add_member_in(
    tx: Tx, actor: str, slug: str, username: str, role: str, at: dt.datetime
) -> ProjectInfo:
    """:func:`add_member` inside the caller's transaction."""
    row = require_project(tx.session, slug)
    require_user(tx.session, username)
    if row.status == "revoked":
        raise InvalidTransition("project.revoked", f"project {slug} is revoked")
    if tx.session.get(UserRole, (username, "researcher")) is None:
        raise InvalidInput(
            "project.member-not-researcher",
            f"{username!r} does not have the researcher role",
        )
    member = tx.session.get(Membership, (slug, username))
    if member is None:
        tx.session.add(
            Membership(project=slug, username=username, role=role, added_at=at, added_by=actor)
        )
    else:
        member.role = role
    details = {"user": username, "role": role}
    tx.audit(actor, "project.member.add", f"project:{slug}", project=slug, details=details)
    return project_info(tx.session, row)


def remove_member(store: AccountStore, actor: str, slug: str, username: str) -> ProjectInfo:
    with store.write() as tx:
        row = require_project(tx.session, slug)
        gone = tx.session.execute(
            delete(Membership).where(Membership.project == slug, Membership.username == username)
        )
        if not getattr(gone, "rowcount", 0):
            raise InvalidInput(
                "project.not-member", f"{username!r} is not a member of project {slug}"
            )
        details = {"user": username}
        tx.audit(actor, "project.member.remove", f"project:{slug}", project=slug, details=details)
        return project_info(tx.session, row)


def get_project(store: AccountStore, slug: str) -> ProjectInfo:
    with store.read() as session:
        return project_info(session, require_project(session, slug))


def list_projects(store: AccountStore) -> list[ProjectInfo]:
    with store.read() as session:
        rows = session.scalars(select(Project).order_by(Project.slug)).all()
        return [project_info(session, row) for row in rows]
