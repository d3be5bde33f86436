"""A project's page for its members (and the committee): status, version, the scope in
force, members, expiry (a banner within 30 days), and, for its PI, amending it.

What it shows is ``GET api/projects/{p}`` (:func:`access_committee.api._project_view`):
to anyone else the project does not exist (404).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from access_committee.api import _project_view
from access_committee.pages import vocabulary
from access_committee.pages.base import Form, Page, get_page, post_page
from sde.accounts.model import SLUG
from sde.errors import AccessDenied, SDEError
from sde.gateway.errors import status_of
from sde.registry.committee import Application

router = APIRouter(include_in_schema=False)


def _approval(page: Page, slug: str, version: int) -> tuple[int, str | None] | None:
    """The application whose approval made ``version`` of the project: (id, conditions)."""
    with page.committee.store.read() as session:
        row = session.execute(
            select(Application.id, Application.conditions).where(
                Application.project == slug, Application.version == version
            )
        ).first()
    return (int(row[0]), row[1]) if row else None


def project_page(page: Page, slug: str, error: SDEError | None = None) -> Response:
    if not SLUG.fullmatch(slug):  # no such project, whatever the path holds
        raise AccessDenied("project.unknown", f"there is no project {slug[:70]!r}")
    project = _project_view(page.committee, page.user, slug)
    approval = _approval(page, slug, project["version"]) if project["version"] else None
    scope = project["scope"] or {}
    pi = any(m["user"] == page.user and m["role"] == "pi" for m in project["members"])
    return page.render(
        "project.html",
        status_of(error) if error else 200,
        project=project,
        scope=scope,
        is_pi=pi,
        approval=approval,
        error=error,
        cohort=vocabulary.trees(list((scope.get("cohort") or {}).get("any_condition") or [])),
        banners=project["warnings"],
    )


@router.get("/projects/{slug}")
async def show(request: Request, slug: str) -> Response:
    return await get_page(request, lambda page: project_page(page, slug))


@router.post("/projects/{slug}/amendments")
async def amend(request: Request, slug: str) -> Response:
    def act(page: Page, form: Form) -> str:
        made = page.committee.amend(page.user, slug)
        return page.url("applications", made["id"], "edit", done="amendment")

    def refused(page: Page, form: Form, err: SDEError) -> Response:
        return project_page(page, slug, err)

    return await post_page(request, act, refused)
