"""The gateway's app factory: settings in, a FastAPI app out (nothing built at import)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sde.accounts import AccountStore, ProjectAccess
from sde.connection import Connection, connect
from sde.errors import ConfigurationError
from sde.gateway import errors
from sde.gateway.access import AccessChecker
from sde.gateway.auth import Authenticator, HubAuthenticator, TokenTable
from sde.gateway.deps import Gateway
from sde.gateway.pool import ConnectionPool, Opener, ProjectConnection
from sde.gateway.routes import health, me, oauth, projects
from sde.proxy.context import Limits
from sde.registry import open_registry, registry_url_beside
from sde.settings import Settings

log = logging.getLogger("sde.gateway")


def registry_url(settings: Settings) -> str:
    """The registry the gateway reads (people, projects) and writes (audit, ledger)."""
    if settings.registry_url:
        return settings.registry_url
    if settings.data_dir and "://" not in settings.data_dir:
        return registry_url_beside(settings.data_dir)
    raise ConfigurationError("settings.registry", "set SDE_REGISTRY_URL for the gateway")


def default_authenticator(settings: Settings) -> Authenticator:
    if settings.gateway_auth == "hub":
        return HubAuthenticator()
    if settings.gateway_tokens is None:
        raise ConfigurationError(
            "settings.gateway-tokens", "SDE_GATEWAY_AUTH=tokens needs SDE_GATEWAY_TOKENS"
        )
    return TokenTable.from_file(settings.gateway_tokens)


def connection_opener(settings: Settings, registry: str) -> Opener:
    """How the pool opens a member's connection: federated over the node agents when
    ``SDE_NODES`` is set, else the embedded ``sde.connect`` over ``SDE_DATA_DIR``."""
    if settings.nodes:
        return federated_opener(settings, registry)
    if not settings.data_dir:
        raise ConfigurationError(
            "settings.data-dir", "set SDE_DATA_DIR (or SDE_NODES) for the gateway"
        )
    data = settings.data_dir

    def open_connection(access: ProjectAccess, user: str) -> ProjectConnection:
        conn = connect(
            data,
            scope=access.scope,
            registry=registry,
            user=user,
            row_cap=settings.row_cap,
            timeout_s=settings.timeout_s,
            cache_dir=settings.extract_cache_dir,
        )
        assert isinstance(conn, Connection)  # noqa: S101 (data given: the embedded kind)
        return conn

    return open_connection


def federated_opener(settings: Settings, registry: str) -> Opener:
    """The coordinator's connections (:mod:`sde.federation.coordinator`): every query is
    split, sent signed to the node agents of ``SDE_NODES`` and merged; the gateway reads no
    node data. The shared secret is read once, here (``SDE_NODE_SECRET_FILE``)."""
    from sde.federation.coordinator import connect_federated
    from sde.federation.signing import read_secret

    if settings.node_secret_file is None:
        raise ConfigurationError(
            "settings.node-secret-file",
            "SDE_NODES is set: set SDE_NODE_SECRET_FILE to the secret shared with the node agents",
        )
    secret = read_secret(settings.node_secret_file)
    nodes = dict(settings.nodes or {})
    engine = open_registry(registry)  # one engine for every connection (audit, keys, ledger)
    limits = Limits(row_cap=settings.row_cap, timeout_s=settings.timeout_s)

    def open_connection(access: ProjectAccess, user: str) -> ProjectConnection:
        return connect_federated(access.scope, nodes, secret, engine, user=user, limits=limits)

    return open_connection


def create_app(
    settings: Settings,
    authenticate: Authenticator | None = None,
    *,
    store: AccountStore | None = None,
) -> FastAPI:
    """The gateway for ``settings``; ``authenticate`` defaults to ``settings.gateway_auth``'s."""
    url = registry_url(settings)
    the_store = store or AccountStore.open(url)
    pool = ConnectionPool(connection_opener(settings, url), settings.gateway_connections)
    gateway = Gateway(
        settings,
        the_store,
        pool,
        authenticate or default_authenticator(settings),
        AccessChecker(the_store),
    )
    prefix = settings.gateway_prefix.rstrip("/")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="SDE Workbench gateway",
        summary="Scoped SQL, EXPLAIN, differentially private queries and budgets of a project.",
        version="1",
        openapi_url=f"{prefix}/openapi.json",
        docs_url=f"{prefix}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    errors.install(app)
    for router in (health.router, me.router, projects.router, oauth.router):
        app.include_router(router, prefix=prefix)
    return app
