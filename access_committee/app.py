"""The data access committee's service app (``sde serve committee``).

Until the committee's workflow lands (applications, reviews, provisioning) the service
has what API.md makes common to every service, and a home page that says what is coming.
"""

from __future__ import annotations

from fastapi import FastAPI

from sde.gateway.auth import Authenticator
from sde.settings import Settings
from sde.web.shell import service_app

COMING = (
    "The data access committee's pages: you will apply for a project here (the data, the "
    "cohort, the period and the nodes you need), and the committee and each node's "
    "custodian will review it; an approval makes the project you can query."
)


def create_app(settings: Settings, authenticate: Authenticator | None = None) -> FastAPI:
    return service_app("committee", "Data access committee", COMING, settings, authenticate)
