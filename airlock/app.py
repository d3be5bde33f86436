"""The airlock service's app (``sde serve airlock``).

Until the airlock's workflow lands (release requests, automatic checks, blind reviews)
the service has what API.md makes common to every service, and a home page that says
what is coming.
"""

from __future__ import annotations

from fastapi import FastAPI

from sde.gateway.auth import Authenticator
from sde.settings import Settings
from sde.web.shell import service_app

COMING = (
    "The airlock is where results leave the environment: you will submit release requests "
    "here, each file checked automatically for disclosure risk and reviewed by two output "
    "checkers who cannot see each other's votes until both have voted."
)


def create_app(settings: Settings, authenticate: Authenticator | None = None) -> FastAPI:
    return service_app("airlock", "Airlock", COMING, settings, authenticate)
