"""Lists: an applicant's applications (``applications``), the committee's queue
(``queue``) and a custodian's node decisions (``nodes``).

Each starts from :meth:`Committee.list_for` (what the caller may see, the listing audited)
and shows each application as :func:`~access_committee.views.application_view` makes it
for the caller's relation, so a list never shows more than the application's page.
The queue and the node list do not exist for people without the role (404).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from access_committee.api import _project_view
from access_committee.applications import _relation
from access_committee.pages.base import Page, get_page, not_found
from access_committee.views import application_view
from access_committee.workflow import IN_REVIEW, Relation, State
from sde.errors import SDEError
from sde.registry.committee import Application
from sde.registry.projects import Membership, Project

router = APIRouter(include_in_schema=False)


def _views(
    page: Page, keep: Callable[[Application, Relation], bool]
) -> list[tuple[dict[str, Any], Relation]]:
    """The applications the caller may see that ``keep`` keeps, each with its view."""
    ids = {s["id"] for s in page.committee.list_for(page.user)}
    found = []
    with page.committee.store.read() as session:
        rows = session.scalars(select(Application).where(Application.id.in_(ids)))
        for app in sorted(rows, key=lambda a: a.state_changed_at):
            relation = _relation(session, page.user, app)
            if keep(app, relation):
                found.append((application_view(session, app, relation, []), relation))
    return found


def expiry_warnings(page: Page) -> list[str]:
    """The 30-day expiry warnings (as ``GET api/projects/{p}``) of the caller's projects,
    or, for committee members and administrators, of every project."""
    with page.committee.store.read() as session:
        if page.member or page.admin:
            slugs = list(session.scalars(select(Project.slug)))
        else:
            query = select(Membership.project).where(Membership.username == page.user)
            slugs = list(session.scalars(query))
    warnings = []
    for slug in sorted(slugs):
        try:
            warnings += _project_view(page.committee, page.user, slug)["warnings"]
        except SDEError:
            continue
    return warnings


def _mine(page: Page) -> Response:
    mine = _views(page, lambda app, rel: rel in (Relation.APPLICANT, Relation.MEMBER))
    mine.reverse()  # newest change first
    with page.committee.store.read() as session:
        projects = list(
            session.scalars(
                select(Membership).where(Membership.username == page.user).order_by("project")
            )
        )
    return page.render(
        "applications.html",
        apps=[view for view, _ in mine],
        projects=[{"project": m.project, "role": m.role} for m in projects],
        banners=expiry_warnings(page),
    )


@router.get("/applications")
async def applications(request: Request) -> Response:
    return await get_page(request, _mine)


def _queue(page: Page) -> Response:
    if not page.member:
        raise not_found("review queue")
    waiting = _views(
        page, lambda app, rel: rel is Relation.COMMITTEE and State(app.state) in IN_REVIEW
    )
    rows = []
    for view, _ in waiting:
        mine = next((c for c in view["conflicts"] if c["member"] == page.user), None)
        voted = next((v for v in view["votes"] if v["member"] == page.user), None)
        tally: dict[str, int] = {}
        for v in view["votes"]:
            tally[v["vote"]] = tally.get(v["vote"], 0) + 1
        rows.append({"app": view, "declared": mine, "voted": voted, "tally": tally})
    return page.render(
        "queue.html", rows=rows, quorum=page.committee.quorum, banners=expiry_warnings(page)
    )


@router.get("/queue")
async def queue(request: Request) -> Response:
    return await get_page(request, _queue)


def _nodes(page: Page) -> Response:
    if not page.custodian:
        raise not_found("list of node decisions")
    asking = _views(page, lambda app, rel: rel is Relation.CUSTODIAN)
    rows = []
    for view, _ in reversed(asking):
        answers = {d["node"]: d for d in view["nodes_decided"]}
        for node in sorted(set(view.get("nodes") or []) & page.nodes):
            rows.append({"app": view, "node": node, "answer": answers.get(node)})
    pending = [r for r in rows if r["answer"] is None and State(r["app"]["state"]) in IN_REVIEW]
    return page.render(
        "nodes.html", pending=pending, done_rows=[r for r in rows if r not in pending]
    )


@router.get("/nodes")
async def nodes(request: Request) -> Response:
    return await get_page(request, _nodes)
