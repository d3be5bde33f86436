"""The gateway's dependencies: who calls, which project they may use, their connection.

Routes take these as ``Annotated`` aliases (:data:`CurrentUser`, :data:`Access`,
:data:`ProjectConnection`) and stay thin; refusals are :class:`~sde.errors.SDEError`\\ s,
which :mod:`sde.gateway.errors` turns into HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from sde.accounts import AccountStore, ProjectAccess, check_project_access
from sde.accounts.model import SLUG
from sde.connection import Connection
from sde.errors import AccessDenied
from sde.gateway.auth import Authenticator
from sde.gateway.pool import ConnectionPool
from sde.settings import Settings


@dataclass
class Gateway:
    """What every request needs: settings, the registry, the connections, the authenticator."""

    settings: Settings
    store: AccountStore
    pool: ConnectionPool
    authenticate: Authenticator


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayState = Annotated[Gateway, Depends(get_gateway)]


async def current_user(request: Request, gateway: GatewayState) -> str:
    user = await gateway.authenticate(request)
    if user is None:
        raise AccessDenied(
            "auth.unauthenticated",
            "not authenticated: send 'Authorization: token <your JupyterHub API token>'",
        )
    return user


CurrentUser = Annotated[str, Depends(current_user)]
ProjectSlug = Annotated[
    str, Path(pattern=SLUG.pattern, max_length=63, description="The project's slug.")
]


def project_access(project: ProjectSlug, user: CurrentUser, gateway: GatewayState) -> ProjectAccess:
    """The caller's access to ``project`` now (checked on every request)."""
    return check_project_access(gateway.store, user, project)


Access = Annotated[ProjectAccess, Depends(project_access)]


def project_connection(access: Access, user: CurrentUser, gateway: GatewayState) -> Connection:
    return gateway.pool.get(access, user)


ProjectConnection = Annotated[Connection, Depends(project_connection)]
