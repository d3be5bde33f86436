"""Who may use which project, now: the rules the gateway, the hub and the services share.

A researcher may use a project when they are its member, the project is ``active`` and
not past its expiry, it has an approved scope, and they hold current safe-researcher
accreditation and have signed the data access agreement. Each rule is a ``check_*``
function that raises :class:`~sde.errors.AccessDenied` naming the rule, with a ``bool``
twin derived from it.

>>> from sde.registry import open_registry
>>> from sde.accounts.users import create_user, record_accreditation, record_daa
>>> from sde.accounts.projects import create_project, add_member
>>> store = AccountStore(open_registry("sqlite://"))
>>> _ = create_user(store, "root", "ada", display_name="Ada", email="ada@x.org",
...     organisation="LU", roles=["researcher"])
>>> may_spawn(store, "ada")
False
>>> _ = create_project(store, "root", "htn", title="HTN",
...     scope={"project": "htn", "access": "rows", "tables": {"person": "*"}})
>>> _ = add_member(store, "root", "htn", "ada")
>>> _ = record_accreditation(store, "root", "ada", dt.date(2099, 1, 1))
>>> _ = record_daa(store, "root", "ada", "v3")
>>> [p.slug for p in active_projects_of(store, "ada")]
['htn']
>>> check_project_access(store, "ada", "htn").version
1
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sde.accounts.model import ProjectInfo, UserInfo, now_utc
from sde.accounts.store import AccountStore, find_user, latest_version, project_info, user_info
from sde.errors import AccessDenied
from sde.registry.projects import Membership, Project
from sde.scope import Scope


@dataclass(frozen=True)
class ProjectAccess:
    """What a member may use: the project, its newest approval version and that scope."""

    project: ProjectInfo
    version: int
    scope: Scope


def check_may_use_data(user: UserInfo, today: dt.date) -> None:
    """Raise unless ``user`` is an accredited researcher who signed the agreement."""
    if "researcher" not in user.roles:
        raise AccessDenied("access.not-researcher", f"{user.username} is not a researcher")
    if not user.is_accredited(today):
        raise AccessDenied(
            "access.not-accredited",
            f"{user.username} has no current safe-researcher accreditation",
        )
    if user.daa_signed_at is None:
        raise AccessDenied(
            "access.no-daa", f"{user.username} has not signed the data access agreement"
        )


def check_project_usable(project: ProjectInfo, today: dt.date) -> None:
    """Raise ``access.<status>`` unless the project is active, unexpired and approved."""
    status = project.effective_status(today)
    if status != "active":
        raise AccessDenied(f"access.{status}", f"project {project.slug} is {status}")
    if project.version == 0:
        raise AccessDenied("access.no-scope", f"project {project.slug} has no approved scope")


def check_project_access(
    store: AccountStore, username: str, slug: str, now: dt.datetime | None = None
) -> ProjectAccess:
    """The scope ``username`` may query in project ``slug`` now, or AccessDenied.

    A project that does not exist and one the user is not a member of look the same
    (rule ``project.unknown``: answer 404); then the project's status, then the user's.
    """
    today = now_utc(now).date()
    with Session(store.engine) as session:
        member = session.get(Membership, (slug, username))
        user = find_user(session, username)
        if member is None or user is None:
            raise AccessDenied("project.unknown", f"there is no project {slug!r}")
        row = session.get(Project, slug)
        assert row is not None  # noqa: S101 (a membership's project exists: foreign key)
        project = project_info(session, row)
        check_project_usable(project, today)
        check_may_use_data(user_info(session, user), today)
        version = latest_version(session, slug)
        assert version is not None  # noqa: S101 (check_project_usable saw one)
        return ProjectAccess(project, version.version, Scope.from_dict(json.loads(version.scope)))


def active_projects_of(
    store: AccountStore, username: str, now: dt.datetime | None = None
) -> list[ProjectInfo]:
    """The projects ``username`` may use now (empty if they may use none)."""
    today = now_utc(now).date()
    with Session(store.engine) as session:
        user = find_user(session, username)
        if user is None:
            return []
        try:
            check_may_use_data(user_info(session, user), today)
        except AccessDenied:
            return []
        slugs = session.scalars(
            select(Membership.project)
            .where(Membership.username == username)
            .order_by(Membership.project)
        ).all()
        projects = [project_info(session, p) for s in slugs if (p := session.get(Project, s))]
    return [p for p in projects if _usable(p, today)]


def projects_of(store: AccountStore, username: str) -> list[ProjectInfo]:
    """Every project ``username`` is a member of, whatever its status (for ``api/me``)."""
    with Session(store.engine) as session:
        slugs = session.scalars(
            select(Membership.project).where(Membership.username == username)
        ).all()
        rows = [session.get(Project, s) for s in sorted(slugs)]
        return [project_info(session, row) for row in rows if row is not None]


def check_may_spawn(
    store: AccountStore, username: str, now: dt.datetime | None = None
) -> list[ProjectInfo]:
    """The projects a notebook server may be started for; ``auth.no-project`` if none."""
    projects = active_projects_of(store, username, now)
    if not projects:
        raise AccessDenied(
            "auth.no-project",
            f"{username} is not a member of an active project",
        )
    return projects


def may_spawn(store: AccountStore, username: str, now: dt.datetime | None = None) -> bool:
    return bool(active_projects_of(store, username, now))


def _usable(project: ProjectInfo, today: dt.date) -> bool:
    try:
        check_project_usable(project, today)
    except AccessDenied:
        return False
    return True
