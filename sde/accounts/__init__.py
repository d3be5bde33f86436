"""People and projects of the hosted workbench: the services over the registry.

Everything here is a plain function over an :class:`AccountStore` (the registry) that
returns frozen snapshots (:class:`UserInfo`, :class:`ProjectInfo`); every change writes
its audit entry in the same transaction. What callers use:

* the hub's authenticator: :func:`verify_login` at login, :func:`check_may_spawn` (or
  :func:`may_spawn`) before starting a notebook server;
* the gateway: :func:`check_project_access` (a member's current scope and version, or
  ``AccessDenied`` with ``project.unknown`` / ``access.<status>`` / ``access.not-accredited``),
  :func:`get_user` and :func:`projects_of` for ``api/me``;
* the committee: :func:`create_project`, :func:`add_version`, :func:`add_member`,
  :func:`change_status`, :func:`custodians_of`;
* the admin command line (``sde users``, ``sde projects``): all of it.
"""

from sde.accounts.access import (
    ProjectAccess,
    active_projects_of,
    check_may_spawn,
    check_may_use_data,
    check_project_access,
    check_project_usable,
    may_spawn,
    projects_of,
)
from sde.accounts.auth import LoginResult, verify_login
from sde.accounts.model import ProjectInfo, UserInfo
from sde.accounts.projects import (
    TRANSITIONS,
    add_member,
    add_version,
    change_status,
    create_project,
    expire_due,
    get_project,
    list_projects,
    remove_member,
    scope_of,
)
from sde.accounts.store import AccountStore
from sde.accounts.users import (
    TotpEnrolment,
    create_user,
    custodians_of,
    enrol_totp,
    get_user,
    grant_custodian,
    list_users,
    record_accreditation,
    record_daa,
    revoke_custodian,
    set_password,
    set_roles,
    unlock,
    update_user,
)

__all__ = [
    "TRANSITIONS",
    "AccountStore",
    "LoginResult",
    "ProjectAccess",
    "ProjectInfo",
    "TotpEnrolment",
    "UserInfo",
    "active_projects_of",
    "add_member",
    "add_version",
    "change_status",
    "check_may_spawn",
    "check_may_use_data",
    "check_project_access",
    "check_project_usable",
    "create_project",
    "create_user",
    "custodians_of",
    "enrol_totp",
    "expire_due",
    "get_project",
    "get_user",
    "grant_custodian",
    "list_projects",
    "list_users",
    "may_spawn",
    "projects_of",
    "record_accreditation",
    "record_daa",
    "remove_member",
    "revoke_custodian",
    "scope_of",
    "set_password",
    "set_roles",
    "unlock",
    "update_user",
    "verify_login",
]
