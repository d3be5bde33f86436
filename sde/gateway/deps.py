"""The gateway's dependencies: who calls, which project they may use, their connection.

Routes take these as ``Annotated`` aliases (:data:`CurrentUser`, :data:`Call`) and stay
thin; refusals are :class:`~sde.errors.SDEError`\\ s, which
:mod:`sde.gateway.errors` turns into HTTP.

FastAPI runs a plain ``def`` dependency on its thread pool, one round trip between the
event loop and a worker thread each, and under load every round trip waits for the GIL.
So the dependencies are ``async`` and never block (:func:`current_user` awaits the hub;
the token table answers at once), and a project's route makes one round trip
(:meth:`ProjectCall.run`) for the registry check, the pool lookup and the query together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from sde.accounts import AccountStore
from sde.accounts.model import SLUG
from sde.errors import AccessDenied
from sde.gateway.access import AccessChecker
from sde.gateway.auth import Authenticator
from sde.gateway.pool import ConnectionPool, ProjectConnection
from sde.settings import Settings

T = TypeVar("T")


@dataclass
class Gateway:
    """What every request needs: settings, the registry, the connections, the authenticator
    and the access check."""

    settings: Settings
    store: AccountStore
    pool: ConnectionPool
    authenticate: Authenticator
    access: AccessChecker


async def get_gateway(request: Request) -> Gateway:
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


@dataclass(frozen=True)
class ProjectCall:
    """One request of ``user`` on ``project``: :meth:`run` does the work on a worker thread."""

    gateway: Gateway
    user: str
    project: str

    def connection(self) -> ProjectConnection:
        """The caller's connection, their access checked now (on every request:
        :class:`~sde.gateway.access.AccessChecker`). Blocks: call it on a worker thread."""
        access = self.gateway.access(self.user, self.project)
        return self.gateway.pool.get(access, self.user)

    async def run(self, work: Callable[[ProjectConnection], T]) -> T:
        """``work(connection)`` on the thread pool, the access check and the pool lookup in
        the same trip."""
        return await run_in_threadpool(lambda: work(self.connection()))


async def project_call(
    project: ProjectSlug, user: CurrentUser, gateway: GatewayState
) -> ProjectCall:
    return ProjectCall(gateway, user, project)


Call = Annotated[ProjectCall, Depends(project_call)]
