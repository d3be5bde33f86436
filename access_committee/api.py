"""The committee's JSON API (API.md): applications, votes, node decisions, projects.

Thin routes over :class:`~access_committee.applications.Committee` and the account
services; refusals are left to the services' one error map. Changes need the
``Authorization`` header (:func:`sde.web.shell.api_caller`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from access_committee.applications import Committee
from access_committee.report import expiry_warning
from sde.accounts import change_status, get_project
from sde.accounts.model import SLUG
from sde.errors import AccessDenied
from sde.registry.committee import LIST_LIMITS, TEXT_LIMITS
from sde.registry.people import UserRole
from sde.web.shell import api_caller

router = APIRouter(prefix="/api", tags=["committee"])

AppId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The application's number.")]
Slug = Annotated[str, Path(pattern=SLUG.pattern, max_length=63, description="A project slug.")]


def _limit(field: str) -> Any:
    """At most the field's registry limit (:data:`TEXT_LIMITS`, which the pages and the
    services check too: control characters are refused there, naming the field)."""
    return Field(max_length=TEXT_LIMITS[field])


Short = Annotated[str, _limit("lay_summary")]


def _committee(request: Request) -> Committee:
    committee: Committee = request.app.state.committee
    return committee


Caller = Annotated[str, Depends(api_caller)]
Service = Annotated[Committee, Depends(_committee)]


class Fields(BaseModel):
    """An application's fields (API.md); any may be missing while it is a draft."""

    model_config = ConfigDict(extra="forbid")
    project: Annotated[str, _limit("project")] | None = None
    title: Annotated[str, _limit("title")] | None = None
    lay_summary: Short | None = None
    purpose: Short | None = None
    public_benefit: Short | None = None
    pi: Annotated[str, _limit("pi")] | None = None
    members: (
        Annotated[list[Annotated[str, _limit("member")]], Field(max_length=LIST_LIMITS["members"])]
        | None
    ) = None
    access: Literal["rows", "aggregates", "dp"] | None = None
    tables: dict[str, list[str] | Literal["*"]] | None = None
    cohort: dict[str, list[int]] | None = None
    period: dict[str, str | None] | None = None
    nodes: (
        Annotated[list[Annotated[str, _limit("node")]], Field(max_length=LIST_LIMITS["nodes"])]
        | None
    ) = None
    dp: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = None
    sdc: dict[str, Annotated[float, Field(allow_inf_nan=False)] | int | bool | None] | None = None
    legal_basis: Short | None = None
    ethics_ref: Short | None = None
    expires: str | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class Conflict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conflict: bool
    note: Annotated[str, _limit("note")] = ""


class Vote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vote: Literal["approve", "approve_with_conditions", "defer", "reject"]
    conditions: Annotated[str, _limit("conditions")] | None = None
    comment: Annotated[str, _limit("comment")] | None = None


class NodeAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agree: bool
    reason: Annotated[str, _limit("reason")] = ""


class Reason(BaseModel):
    """Checked by :func:`sde.accounts.projects.status_reason`, as on the pages."""

    model_config = ConfigDict(extra="forbid")
    reason: str


@router.post("/applications", status_code=201, summary="Start a draft application")
async def create(body: Fields, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(committee.create, user, body.given())


@router.get("/applications", summary="The applications the caller may see")
async def list_applications(user: Caller, committee: Service) -> list[dict[str, Any]]:
    return await run_in_threadpool(committee.list_for, user)


@router.get("/applications/{app_id}", summary="One application, as the caller may see it")
async def get(app_id: AppId, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(committee.get, user, app_id)


@router.patch("/applications/{app_id}", summary="Change a draft's fields; its problems listed")
async def update(app_id: AppId, body: Fields, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(committee.update, user, app_id, body.given())


@router.post("/applications/{app_id}/submit", summary="Submit for review")
async def submit(app_id: AppId, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(committee.submit, user, app_id)


@router.post("/applications/{app_id}/withdraw", summary="Withdraw the application")
async def withdraw(app_id: AppId, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(committee.withdraw, user, app_id)


@router.post("/applications/{app_id}/conflicts", summary="Declare a conflict of interest, or none")
async def declare(
    app_id: AppId, body: Conflict, user: Caller, committee: Service
) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: committee.declare(user, app_id, conflict=body.conflict, note=body.note)
    )


@router.post("/applications/{app_id}/votes", summary="A committee member's vote")
async def vote(app_id: AppId, body: Vote, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: committee.vote(
            user, app_id, body.vote, conditions=body.conditions, comment=body.comment
        )
    )


@router.post("/applications/{app_id}/nodes/{node}", summary="A node custodian's answer")
async def node_answer(
    app_id: AppId,
    node: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,62}$")],
    body: NodeAnswer,
    user: Caller,
    committee: Service,
) -> dict[str, Any]:
    return await run_in_threadpool(
        lambda: committee.node_decision(user, app_id, node, agree=body.agree, reason=body.reason)
    )


@router.get("/projects/{project}", summary="A project: status, version, scope, members")
async def project(project: Slug, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(_project_view, committee, user, project)


@router.post("/projects/{project}/suspend", summary="Suspend a project (admin)")
async def suspend(project: Slug, body: Reason, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(_status, committee, user, project, "suspend", body.reason)


@router.post("/projects/{project}/revoke", summary="Revoke a project (admin)")
async def revoke(project: Slug, body: Reason, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(_status, committee, user, project, "revoke", body.reason)


@router.post("/projects/{project}/amendments", status_code=201, summary="Amend a project (PI)")
async def amend(project: Slug, user: Caller, committee: Service) -> dict[str, Any]:
    return await run_in_threadpool(committee.amend, user, project)


def _roles(committee: Committee, user: str) -> set[str]:
    from sqlalchemy import select

    with committee.store.read() as session:
        return set(session.scalars(select(UserRole.role).where(UserRole.username == user)))


def _project_view(committee: Committee, user: str, slug: str) -> dict[str, Any]:
    """Members, committee and admins see a project; to anyone else it does not exist."""
    from sde.accounts import scope_of
    from sde.errors import InvalidInput

    try:
        info = get_project(committee.store, slug)
    except InvalidInput:
        raise AccessDenied("project.unknown", f"there is no project {slug!r}") from None
    if user not in info.member_names() and not _roles(committee, user) & {"committee", "admin"}:
        raise AccessDenied("project.unknown", f"there is no project {slug!r}")
    today = committee.now().date()
    version, scope = scope_of(committee.store, slug) if info.version else (0, None)
    warning = expiry_warning(slug, info.expires, today)
    warnings = [warning] if warning is not None else []
    return {
        "project": slug,
        "title": info.title,
        "status": info.effective_status(today),
        "version": version,
        "scope": scope.to_dict() if scope is not None else None,
        "members": [{"user": m.username, "role": m.role} for m in info.members],
        "expires": info.expires.isoformat() if info.expires else None,
        "warnings": warnings,
    }


def _status(committee: Committee, user: str, slug: str, action: str, reason: str) -> dict[str, Any]:
    with committee.store.refusals_audited(user, f"project.{action}", f"project:{slug}"):
        if "admin" not in _roles(committee, user):
            raise AccessDenied(
                "committee.admin-only", "only an administrator changes a project's status"
            )
        change_status(committee.store, user, slug, action, reason)
    return _project_view(committee, user, slug)
