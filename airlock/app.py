"""The airlock service's app (``sde serve airlock``): the JSON API of API.md and the pages
(:mod:`airlock.pages`) over :class:`~airlock.requests.Airlock`, with what every service has
(:mod:`sde.web.shell`).

Settings: ``SDE_REGISTRY_URL`` (people, projects, requests, the audit log),
``SDE_AIRLOCK_DIR`` (the file store; default ``airlock/`` beside ``SDE_DATA_DIR``),
``SDE_AIRLOCK_FILE_TYPES`` and ``SDE_AIRLOCK_MAX_FILE_MB``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from airlock import api, pages
from airlock.files import FileStore
from airlock.requests import Airlock
from sde.accounts import AccountStore
from sde.errors import ConfigurationError
from sde.gateway.auth import Authenticator
from sde.settings import Settings
from sde.web.shell import ServiceState, service_app

COMING = (
    "The airlock is where results leave the environment: you submit release requests, each "
    "file checked automatically for disclosure risk and reviewed by two output checkers "
    "who cannot see each other's votes until both have voted. Its JSON API is live "
    "(see openapi.json); these pages are coming."
)


def file_store_dir(settings: Settings) -> Path:
    if settings.airlock_dir is not None:
        return settings.airlock_dir
    if settings.data_dir and "://" not in settings.data_dir:
        return Path(settings.data_dir).resolve().parent / "airlock"
    raise ConfigurationError("settings.airlock-dir", "set SDE_AIRLOCK_DIR for the airlock")


def create_app(
    settings: Settings,
    authenticate: Authenticator | None = None,
    *,
    store: AccountStore | None = None,
) -> FastAPI:
    app = service_app("airlock", "Airlock", COMING, settings, authenticate, store=store)
    state: ServiceState = app.state.gateway
    app.state.airlock = Airlock(
        state.store,
        FileStore(file_store_dir(settings)),
        file_types=settings.airlock_file_types,
        max_file_mb=settings.airlock_max_file_mb,
    )
    app.include_router(api.router, prefix=settings.gateway_prefix.rstrip("/"))
    pages.install(app, settings.gateway_prefix)  # the pages, in place of the "coming" page
    return app
