"""The administrators' pages and the committee report.

Administrators (role ``admin``) only: ``admin`` (an overview), ``admin/users`` (roles,
accreditation, data access agreement, locks), ``admin/users/{name}`` (renew accreditation,
unlock, grant or remove a role), ``admin/projects`` (status, version, expiry, members) and
``admin/projects/{slug}`` (its scope; suspend, revoke or reinstate with a reason, after a
confirmation step). To anyone else these pages do not exist (404, rule
``pages.not-found``), except a project's status change, which answers 403
``committee.admin-only`` as the JSON API does. Committee members and administrators see
``report`` (:mod:`access_committee.report`), with a banner for every active project
within 30 days of its expiry.

Every form calls the account service the command line calls (``sde users``,
``sde projects``: :mod:`sde.accounts`), which writes its audit entry in the same
transaction; a refusal is audited too (``AccountStore.refusals_audited``) and renders the
page again with the rule id, what was typed kept in the form.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from access_committee.pages.base import (
    TEMPLATES,
    Form,
    Page,
    confirmations,
    error_page,
    get_page,
    not_found,
    post_page,
)
from access_committee.report import AGE_BANDS, committee_report, expiry_banners, in_words
from sde.accounts import (
    TRANSITIONS,
    change_status,
    get_project,
    get_user,
    list_projects,
    list_users,
    record_accreditation,
    scope_of,
    set_roles,
    unlock,
)
from sde.accounts.model import ROLES, SLUG, USERNAME, ProjectInfo
from sde.accounts.projects import status_reason
from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.gateway.errors import status_of
from sde.registry.committee import TEXT_LIMITS, text_problem

router = APIRouter(include_in_schema=False)

#: The longest accreditation reference the registry keeps.
MAX_REF = TEXT_LIMITS["ref"]
#: What each status action is called on the pages, and the words of its confirmation.
ACTIONS: dict[str, tuple[str, str]] = {
    "suspend": ("Suspend", "Queries and airlock actions stop at once until it is reinstated."),
    "revoke": ("Revoke", "Revocation is final: the project can never be used again."),
    "reactivate": ("Reinstate", "Its members can query it again at once."),
}
#: The audit event of a status form posted with an action that is none of :data:`ACTIONS`.
STATUS_EVENT = "project.status"

TEMPLATES.env.filters["in_words"] = in_words
confirmations(
    accredited="The accreditation was recorded.",
    unlocked="The account was unlocked.",
    roles="The roles were changed.",
    suspend="The project was suspended: it is refused everywhere from now on.",
    revoke="The project was revoked: it is refused everywhere from now on.",
    reactivate="The project was reinstated.",
)


def _admin(page: Page, what: str = "administration page") -> None:
    if not page.admin:
        raise not_found(what)


async def _admin_get(request: Request, build: Callable[[Page], Response]) -> Response:
    def checked(page: Page) -> Response:
        _admin(page)
        return build(page)

    return await get_page(request, checked)


def _today(page: Page) -> dt.date:
    return page.committee.now().date()


# -- overview and users -------------------------------------------------------------------


@router.get("/admin")
async def overview(request: Request) -> Response:
    def build(page: Page) -> Response:
        users, projects = list_users(page.committee.store), list_projects(page.committee.store)
        now = page.committee.now()
        return page.render(
            "admin.html",
            users=len(users),
            locked=sum(u.is_locked(now) for u in users),
            unaccredited=sum(
                "researcher" in u.roles and not u.is_accredited(now.date()) for u in users
            ),
            projects=_project_rows(projects, now.date()),
        )

    return await _admin_get(request, build)


@router.get("/admin/users")
async def users(request: Request) -> Response:
    def build(page: Page) -> Response:
        return page.render("admin_users.html", users=list_users(page.committee.store))

    return await _admin_get(request, build)


def _user_page(
    page: Page, name: str, error: SDEError | None = None, form: Form | None = None
) -> Response:
    _admin(page)
    if not USERNAME.match(name):
        raise not_found(f"user {name!r}")
    try:
        info = get_user(page.committee.store, name)
    except InvalidInput:
        raise not_found(f"user {name!r}") from None
    return page.render(
        "admin_user.html",
        status_of(error) if error is not None else 200,
        u=info,
        roles_all=ROLES,
        error=error,
        form=form.get if form is not None else (lambda key, default="": default),
        failed=error.details.get("field") if error is not None else None,
    )


@router.get("/admin/users/{name}")
async def user(request: Request, name: str) -> Response:
    return await get_page(request, lambda page: _user_page(page, name))


async def _user_action(
    request: Request, name: str, event: str, do: Callable[[Page, Form], object], done: str
) -> Response:
    """A form of a user's page: the account service called, audited, back to the page."""

    def act(page: Page, form: Form) -> str:
        # Audited from the first check: a non-admin posting the form (an attempt to grant
        # themselves a role, say) is refused as missing and leaves its trace.
        with page.committee.store.refusals_audited(page.user, event, f"user:{name}"):
            _user_page_exists(page, name)
            do(page, form)
        return page.url("admin", "users", name, done=done)

    def refused(page: Page, form: Form, err: SDEError) -> Response:
        return _user_page(page, name, err, form)

    return await post_page(request, act, refused)


def _user_page_exists(page: Page, name: str) -> None:
    _admin(page)
    if not USERNAME.match(name):
        raise not_found(f"user {name!r}")
    try:
        get_user(page.committee.store, name)
    except InvalidInput:
        raise not_found(f"user {name!r}") from None


def parse_date(text: str, field: str) -> dt.date:
    """A date typed as ``YYYY-MM-DD`` (what a date input sends), or a refusal naming it.

    >>> parse_date("2027-03-31", "until")
    datetime.date(2027, 3, 31)
    >>> parse_date("31/03/2027", "until")
    Traceback (most recent call last):
    ...
    sde.errors.InvalidInput: '31/03/2027' is not a date: give it as YYYY-MM-DD
    """
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        what = f"{text.strip()!r} is not a date" if text.strip() else "a date is required"
        raise InvalidInput(
            "user.invalid-date", f"{what}: give it as YYYY-MM-DD", field=field
        ) from None


@router.post("/admin/users/{name}/accreditation")
async def accredit(request: Request, name: str) -> Response:
    def do(page: Page, form: Form) -> None:
        until = parse_date(form.get("until"), "until")
        ref = form.get("ref").strip() or None
        problem = text_problem(ref or "", MAX_REF)
        if problem is not None:
            raise InvalidInput("user.invalid-ref", f"a reference: {problem}", field="ref")
        record_accreditation(page.committee.store, page.user, name, until, ref)

    return await _user_action(request, name, "user.accredit", do, "accredited")


@router.post("/admin/users/{name}/unlock")
async def unlock_user(request: Request, name: str) -> Response:
    def do(page: Page, form: Form) -> None:
        unlock(page.committee.store, page.user, name)

    return await _user_action(request, name, "user.unlock", do, "unlocked")


@router.post("/admin/users/{name}/roles")
async def roles(request: Request, name: str) -> Response:
    def do(page: Page, form: Form) -> None:
        role, op = form.get("role"), form.get("op")
        if op not in ("grant", "remove"):
            raise InvalidInput("pages.form", "choose to grant or to remove the role", field="op")
        current = set(get_user(page.committee.store, name).roles)
        wanted = current | {role} if op == "grant" else current - {role}
        if op == "remove" and role not in current:
            raise InvalidInput(
                "user.no-such-role", f"{name} does not have the role {role!r}", field="role"
            )
        if op == "remove" and role == "admin" and name == page.user:
            raise InvalidInput(
                "user.own-admin",
                "you cannot remove your own admin role: ask another administrator",
                field="role",
            )
        set_roles(page.committee.store, page.user, name, wanted)

    return await _user_action(request, name, "user.roles", do, "roles")


# -- projects -----------------------------------------------------------------------------


def _project_rows(projects: list[ProjectInfo], today: dt.date) -> list[dict[str, Any]]:
    return [
        {**p.to_dict(today), "days_left": (p.expires - today).days if p.expires else None}
        for p in projects
    ]


@router.get("/admin/projects")
async def projects(request: Request) -> Response:
    def build(page: Page) -> Response:
        rows = _project_rows(list_projects(page.committee.store), _today(page))
        return page.render("admin_projects.html", projects=rows)

    return await _admin_get(request, build)


def _project(page: Page, slug: str) -> ProjectInfo:
    if not SLUG.match(slug):
        raise AccessDenied("project.unknown", f"there is no project {slug!r}")
    try:
        return get_project(page.committee.store, slug)
    except InvalidInput:
        raise AccessDenied("project.unknown", f"there is no project {slug!r}") from None


def _project_page(
    page: Page, slug: str, error: SDEError | None = None, form: Form | None = None
) -> Response:
    _admin(page)
    info = _project(page, slug)
    today = _today(page)
    scope = scope_of(page.committee.store, slug)[1].to_dict() if info.version else None
    past = info.expires is not None and today > info.expires  # only revocation is left
    return page.render(
        "admin_project.html",
        status_of(error) if error is not None else 200,
        p=_project_rows([info], today)[0],
        scope=scope,
        scope_json=json.dumps(scope, indent=2) if scope is not None else "",
        actions=[
            (a, *ACTIONS[a])
            for a in ACTIONS
            if info.status in TRANSITIONS[a][0] and (a == "revoke" or not past)
        ],
        error=error,
        chosen=form.get("action") if form is not None else "",
        reason=form.get("reason") if form is not None else "",
    )


@router.get("/admin/projects/{slug}")
async def project(request: Request, slug: str) -> Response:
    return await get_page(request, lambda page: _project_page(page, slug))


@router.post("/admin/projects/{slug}/status")
async def status(request: Request, slug: str) -> Response:
    """Suspend, revoke or reinstate: the first post asks to confirm, the second acts."""

    def act(page: Page, form: Form) -> str | Response:
        action, reason = form.get("action"), form.get("reason")
        # The audit event is ours: project.<action> for an action of ACTIONS, never a name
        # the form makes up (an unknown action is audited as project.status).
        event = f"project.{action}" if action in ACTIONS else STATUS_EVENT
        with page.committee.store.refusals_audited(page.user, event, f"project:{slug}"):
            if not page.admin:
                raise AccessDenied(
                    "committee.admin-only", "only an administrator changes a project's status"
                )
            info = _project(page, slug)
            if action not in ACTIONS:
                raise InvalidInput("project.invalid-action", "choose what to do", field="action")
            status_reason(action, reason)  # the API's check (sde.accounts.change_status)
            if form.get("confirm") != "yes":
                return _confirm_page(page, info, action, reason)  # nothing changed yet
            change_status(page.committee.store, page.user, slug, action, reason)
        return page.url("admin", "projects", slug, done=action)

    def refused(page: Page, form: Form, err: SDEError) -> Response:
        if not page.admin:
            return error_page(page.request, err)
        return _project_page(page, slug, err, form)

    return await post_page(request, act, refused)


def _confirm_page(page: Page, info: ProjectInfo, action: str, reason: str) -> Response:
    label, consequence = ACTIONS[action]
    return page.render(
        "admin_confirm.html",
        p=info.to_dict(_today(page)),
        action=action,
        label=label,
        consequence=consequence,
        reason=reason,
    )


# -- the committee report -----------------------------------------------------------------


@router.get("/report")
async def report(request: Request) -> Response:
    def build(page: Page) -> Response:
        if not (page.member or page.admin):
            raise not_found("committee report")
        now = page.committee.now()
        with page.committee.store.read() as session:
            found = committee_report(session, now)
            banners = expiry_banners(session, page.user, True, now.date())
        return page.render(
            "report.html", r=found, bands=[label for label, _ in AGE_BANDS], banners=banners
        )

    return await get_page(request, build)
