"""The committee's pages: server-rendered HTML over the same
:class:`~access_committee.applications.Committee` the JSON API calls.

:func:`install` serves them under the service's prefix, ahead of the shell's "coming"
page (its ``/`` is the home page). The shared pieces are in :mod:`.base`: the page
context (:class:`~.base.Page`, ``page.render``), :func:`~.base.get_page` and
:func:`~.base.post_page` (sign-in, CSRF bound to the sign-in, the form parser with its
limits, refusals rendered with their rule id), and the templates' ``base.html`` and
``macros.html``.

How another page module registers its routes: it exposes ``router`` (an
``APIRouter(include_in_schema=False)``) and is named in :data:`MODULES`;
``access_committee.admin_pages`` is included when it exists (``install`` imports it by
name, so it may import :mod:`.base` freely). Its templates live in
``access_committee/templates/`` and extend ``base.html``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from access_committee.pages.base import PagesState

#: The page modules, each exposing ``router``; later ones may not shadow earlier routes.
MODULES = (
    "access_committee.pages.home",
    "access_committee.pages.applicants",
    "access_committee.pages.vocabulary",
    "access_committee.pages.application",
    "access_committee.pages.queues",
    "access_committee.pages.projects",
    "access_committee.admin_pages",
)
_SCRIPT = Path(__file__).resolve().parent.parent / "templates" / "committee.js"
_assets = APIRouter(include_in_schema=False)


@_assets.get("/assets/committee.js")
async def script() -> Response:
    """The pages' one script (progressive enhancement only: every page works without it)."""
    return Response(
        _SCRIPT.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def routers() -> list[APIRouter]:
    """The routers of every page module present (``admin_pages`` may not exist yet)."""
    found = [_assets]
    for name in MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        found.append(importlib.import_module(name).router)
    return found


def install(app: FastAPI, prefix: str) -> None:
    """Serve the pages under ``prefix``, ahead of the shell's "coming" home page.

    Routes match in order, so the pages' routes go first: their ``/`` is the home page.
    """
    app.state.committee_pages = PagesState()
    before = len(app.router.routes)
    for router in routers():
        app.include_router(router, prefix=prefix.rstrip("/"))
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
