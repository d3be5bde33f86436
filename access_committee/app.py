"""The data access committee's service app (``sde serve committee``): the JSON API of
API.md and the pages (:mod:`access_committee.pages`) over
:class:`~access_committee.applications.Committee`, with what every service has
(:mod:`sde.web.shell`). Settings: ``SDE_REGISTRY_URL``, ``SDE_COMMITTEE_QUORUM``,
``SDE_DATA_DIR`` (the nodes' data, for the cohort's size per node on the review page).
"""

from __future__ import annotations

from fastapi import FastAPI

from access_committee import api, pages
from access_committee.applications import Committee
from sde.accounts import AccountStore
from sde.gateway.auth import Authenticator
from sde.settings import Settings
from sde.web.shell import ServiceState, service_app

#: The shell's home page text; the committee's own home page (:mod:`access_committee.pages`)
#: is served in its place.
COMING = (
    "The data access committee: apply for a project here (the data, the cohort, the period "
    "and the nodes you need); the committee and each node's custodian review it, and an "
    "approval makes the project you can query."
)


def create_app(
    settings: Settings,
    authenticate: Authenticator | None = None,
    *,
    store: AccountStore | None = None,
) -> FastAPI:
    app = service_app(
        "committee", "Data access committee", COMING, settings, authenticate, store=store
    )
    state: ServiceState = app.state.gateway
    app.state.committee = Committee(state.store, quorum=settings.committee_quorum)
    app.include_router(api.router, prefix=settings.gateway_prefix.rstrip("/"))
    pages.install(app, settings.gateway_prefix)  # the pages, in place of the "coming" page
    return app
