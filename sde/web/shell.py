"""A workbench service's app: the parts API.md makes common, and a "coming" home page.

:func:`service_app` gives a FastAPI app under the service's prefix with ``GET healthz``
(no authentication), ``GET openapi.json``, ``GET api/me`` (who is calling and their
roles; 401 without a token), the hub's OAuth login for browsers (``oauth_callback``) and
the error map of :mod:`sde.gateway.errors`. The airlock and the committee start from it;
until their workflows land their home page says what is coming, to a logged-in user only
(others are sent to the hub's login).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sde.accounts import AccountStore, get_user
from sde.errors import AccessDenied
from sde.gateway import errors
from sde.gateway.app import default_authenticator, registry_url
from sde.gateway.auth import Authenticator, HubAuthenticator, header_token
from sde.gateway.routes import health, oauth
from sde.settings import Settings
from sde.web.limits import BodyLimit, is_upload

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
_STATE_COOKIE = "sde-gateway-oauth-state"  # the name sde.gateway.routes.oauth checks


@dataclass
class ServiceState:
    """What the shared routes read from ``app.state.gateway`` (the gateway's own name)."""

    name: str
    title: str
    settings: Settings
    store: AccountStore
    authenticate: Authenticator


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.gateway
    return state


#: Methods that change nothing; the API takes the browser's cookie for these only.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def api_caller(request: Request) -> str:
    """The user behind an API request: 401 without one.

    A change through the API needs the ``Authorization`` header: a browser's cookie is
    sent by any page that posts a form to us, so it only reads (the pages have their own
    forms, each with a token tied to the session).
    """
    user = await _state(request).authenticate(request)
    if user is None:
        raise AccessDenied(
            "auth.unauthenticated",
            "not authenticated: send 'Authorization: token <your JupyterHub API token>'",
        )
    if request.method not in SAFE_METHODS and header_token(request) is None:
        raise AccessDenied(
            "auth.header-required",
            "changes through the API need 'Authorization: token ...'; in a browser use the pages",
        )
    return user


_user = api_caller


def _api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["me"])

    @router.get("/me", summary="Who is calling, and their roles")
    async def me(request: Request) -> dict[str, Any]:
        user = await _user(request)
        info = get_user(_state(request).store, user)
        return {"user": user, "roles": sorted(info.roles), "nodes": sorted(info.nodes)}

    return router


def _page_router(coming: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home(request: Request) -> Response:
        state = _state(request)
        user = await state.authenticate(request)
        if user is None:
            auth = state.authenticate
            if not isinstance(auth, HubAuthenticator):
                raise AccessDenied("auth.unauthenticated", "not authenticated")
            url, oauth_state = auth.login_url(str(request.url))
            answer = RedirectResponse(url, status_code=302)
            answer.set_cookie(
                _STATE_COOKIE, oauth_state, max_age=600, httponly=True, path=auth.cookie_path
            )
            return answer
        context = {"title": state.title, "user": user, "coming": coming, "service": state.name}
        return TEMPLATES.TemplateResponse(request, "coming.html", context)

    return router


def service_app(
    name: str,
    title: str,
    coming: str,
    settings: Settings,
    authenticate: Authenticator | None = None,
    *,
    store: AccountStore | None = None,
) -> FastAPI:
    """The app of service ``name``, its home page saying what is ``coming``."""
    the_store = store or AccountStore.open(registry_url(settings))
    prefix = settings.gateway_prefix.rstrip("/")
    app = FastAPI(
        title=f"SDE Workbench {name}",
        summary=title,
        version="1",
        openapi_url=f"{prefix}/openapi.json",
        docs_url=f"{prefix}/docs",
        redoc_url=None,
    )
    app.state.gateway = ServiceState(
        name, title, settings, the_store, authenticate or default_authenticator(settings)
    )
    errors.install(app)
    app.add_middleware(BodyLimit, exempt=is_upload)
    app.include_router(_page_router(coming), prefix=prefix)
    for router in (health.router, _api_router(), oauth.router):
        app.include_router(router, prefix=prefix)
    return app
