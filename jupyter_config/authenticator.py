"""The hub's authenticator: the registry's people, password plus one-time code.

:class:`SDEAuthenticator` asks :func:`sde.accounts.verify_login` (argon2id password, RFC 6238
code in the login form's ``otp`` field, lockout after five failures, accreditation or a staff
role) and never decides a rule itself. A refusal is a failed login: the reason goes to the
hub's log (rule and username), the login page says only that the login failed, so it never
tells which factor was wrong, nor whether the account exists or is locked.

What the hub learns from the registry at login, and again every ``auth_refresh_age`` seconds
(:meth:`SDEAuthenticator.refresh_user`):

* ``admin``: the registry's ``admin`` role (taken away when the role goes);
* groups: one JupyterHub group per project the user may use now, named ``project-<slug>``,
  and one per registry role, ``role-<role>``, whose hub role grants the services' custom
  scope for it (``jupyter_config.hub.ROLE_SCOPES``) (``manage_groups``: the registry is the
  only source of both);
* ``auth_state`` (kept only when the hub has ``JUPYTERHUB_CRYPT_KEY``): roles and projects.

Before a notebook server starts, :meth:`SDEAuthenticator.pre_spawn_start` asks the registry
again (:func:`sde.accounts.check_may_spawn`): only a member of an active project gets one,
for a project they chose (:func:`project_form`) that is put in the server's environment as
``SDE_PROJECT``, with ``SDE_GATEWAY_URL`` and ``SDE_AIRLOCK_URL``. This works with any
spawner.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Bool, Unicode, default

from sde.accounts import (
    AccountStore,
    ProjectInfo,
    active_projects_of,
    check_may_spawn,
    get_user,
    verify_login,
)
from sde.accounts.model import USERNAME
from sde.errors import AccessDenied, InvalidInput

GROUP_PREFIX = "project-"


def role_group(role: str) -> str:
    """The JupyterHub group of a registry role; its hub role grants the role's custom scope.

    >>> role_group("output-checker")
    'role-output-checker'
    """
    return f"role-{role}"


def group_name(slug: str) -> str:
    """The JupyterHub group of a project's members.

    >>> group_name("htn-deprivation")
    'project-htn-deprivation'
    """
    return f"{GROUP_PREFIX}{slug}"


class SDEAuthenticator(Authenticator):
    """Password and TOTP code against the workbench's registry (module docstring)."""

    registry_url = Unicode("", help="SQLAlchemy URL of the registry (SDE_REGISTRY_URL).").tag(
        config=True
    )
    gateway_url = Unicode(
        "", help="URL of the query gateway, set as SDE_GATEWAY_URL in every notebook server."
    ).tag(config=True)
    airlock_url = Unicode(
        "", help="URL of the airlock, set as SDE_AIRLOCK_URL in every notebook server."
    ).tag(config=True)
    committee_url = Unicode(
        "/services/committee/",
        help="Where a researcher without a project applies for one (shown when a server "
        "is refused).",
    ).tag(config=True)
    any_allow_config = Bool(True, help="The registry is the allow list.").tag(config=True)

    @default("request_otp")
    def _request_otp(self) -> bool:
        return True

    @default("otp_prompt")
    def _otp_prompt(self) -> str:
        return "One-time code:"

    @default("manage_groups")
    def _manage_groups(self) -> bool:
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age(self) -> int:
        return 300

    _store: AccountStore | None = None

    @property
    def store(self) -> AccountStore:
        if self._store is None:
            if not self.registry_url:
                raise ValueError("SDEAuthenticator.registry_url is not set")
            self._store = AccountStore.open(self.registry_url)
        return self._store

    def check_allow_config(self) -> None:
        self.log.info("Login: registry users only (%s)", self.store)

    async def authenticate(
        self, handler: web.RequestHandler | None, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        username = str(data.get("username") or "").strip().lower()
        password = str(data.get("password") or "")
        otp = str(data.get("otp") or "").replace(" ", "")
        if not USERNAME.match(username):
            self.log.warning("Login refused: not a valid username (auth.bad-credentials)")
            return None
        try:
            result = await asyncio.to_thread(verify_login, self.store, username, password, otp)
        except AccessDenied as err:
            self.log.warning("Login refused for %s (%s)", username, err.rule)
            return None
        return _model(username, result.roles, result.projects)

    async def check_allowed(
        self, username: str, authentication: dict[str, Any] | None = None
    ) -> bool:
        """Only people in the registry: ``allow_all`` stays off, no allow list is kept."""
        try:
            await asyncio.to_thread(get_user, self.store, username)
        except InvalidInput:
            return False
        return True

    async def refresh_user(self, user: Any, handler: Any = None) -> bool | dict[str, Any]:
        """Roles and projects again from the registry; False (log in again) if the user
        is gone, locked, or neither accredited nor staff any more."""
        return await asyncio.to_thread(self._refresh, user.name)

    def _refresh(self, username: str) -> bool | dict[str, Any]:
        try:
            info = get_user(self.store, username)
        except InvalidInput:
            return False
        now = dt.datetime.now(dt.UTC)
        if info.is_locked(now) or not (info.is_staff or info.is_accredited(now.date())):
            return False
        projects = active_projects_of(self.store, username)
        return _model(username, info.roles, [p.slug for p in projects])

    async def pre_spawn_start(self, user: Any, spawner: Any) -> None:
        """Refuse a server to anyone not in an active project; name the project chosen."""
        try:
            projects = await asyncio.to_thread(check_may_spawn, self.store, user.name)
        except AccessDenied as err:
            self.log.warning("Server refused to %s (%s)", user.name, err.rule)
            raise no_server(err.message, self.committee_url) from None
        slug = choose_project(projects, (spawner.user_options or {}).get("project"))
        spawner.environment = {
            **spawner.environment,
            "SDE_PROJECT": slug,
            "SDE_GATEWAY_URL": self.gateway_url,
            "SDE_AIRLOCK_URL": self.airlock_url,
        }
        self.log.info("Server for %s works for project %s", user.name, slug)


def no_server(reason: str, committee_url: str) -> web.HTTPError:
    """A 403 whose message (API) and page (browser) send the user to the committee."""
    text = f"No notebook server: {reason}. Apply to the access committee at {committee_url}"
    error = web.HTTPError(403, text)
    # JupyterHub shows these on its error page instead of a generic "failed to start".
    setattr(error, "jupyterhub_message", text)  # noqa: B010 (JupyterHub reads it)
    html_message = (
        f"No notebook server: {html.escape(reason)}. "
        f'Apply to the access committee at <a href="{html.escape(committee_url)}">'
        f"{html.escape(committee_url)}</a>."
    )
    setattr(error, "jupyterhub_html_message", html_message)  # noqa: B010
    return error


def choose_project(projects: list[ProjectInfo], wanted: object) -> str:
    """The project a server is for: the one asked for if the user may use it, the only one
    if there is one; a 403 otherwise."""
    slugs = [p.slug for p in projects]
    if wanted is None and len(slugs) == 1:
        return slugs[0]
    if isinstance(wanted, str) and wanted in slugs:
        return wanted
    raise web.HTTPError(
        403, f"Choose one of your active projects for the server: {', '.join(slugs)}"
    )


def _model(username: str, roles: frozenset[str], slugs: Sequence[str]) -> dict[str, Any]:
    return {
        "name": username,
        "admin": "admin" in roles,
        "groups": [group_name(s) for s in slugs] + [role_group(r) for r in sorted(roles)],
        "auth_state": {"roles": sorted(roles), "projects": list(slugs)},
    }


# -- the project picker (Spawner.options_form / options_from_form) ------------------------


def project_form(spawner: Any) -> str:
    """A project picker when the user has several active projects; no form otherwise."""
    authenticator = spawner.authenticator
    if not isinstance(authenticator, SDEAuthenticator):
        return ""
    projects = active_projects_of(authenticator.store, spawner.user.name)
    if len(projects) < 2:
        return ""
    options = "\n".join(
        f'<option value="{html.escape(p.slug)}">{html.escape(p.slug)}: '
        f"{html.escape(p.title)}</option>"
        for p in projects
    )
    return (
        '<label for="sde-project">Project this server works for</label>\n'
        f'<select class="form-control" name="project" id="sde-project">\n{options}\n</select>'
    )


def project_from_form(formdata: dict[str, list[str]]) -> dict[str, str]:
    """The picker's answer as user options (checked again at spawn)."""
    chosen = formdata.get("project") or []
    return {"project": chosen[0]} if chosen else {}
