"""Browsers: the hub's OAuth login (only with :class:`~sde.gateway.auth.HubAuthenticator`).

``GET /`` sends a browser that is not logged in to the hub's login and back to
``oauth_callback``, which exchanges the code for a token and keeps it in a signed cookie;
the JSON API under ``api/`` then accepts that cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from sde.errors import AccessDenied
from sde.gateway.auth import HubAuthenticator
from sde.gateway.deps import GatewayState

router = APIRouter(tags=["browser"], include_in_schema=False)
_STATE_COOKIE = "sde-gateway-oauth-state"


def _hub(gateway: GatewayState) -> HubAuthenticator:
    auth = gateway.authenticate
    if not isinstance(auth, HubAuthenticator):
        raise AccessDenied("auth.no-browser-login", "this gateway has no browser login")
    return auth


@router.get("/")
async def index(request: Request, gateway: GatewayState) -> Response:
    user = await gateway.authenticate(request)
    if user is not None:
        return JSONResponse({"user": user, "api": str(request.url_for("openapi"))})
    auth = _hub(gateway)
    url, state = auth.login_url(str(request.url))
    answer = RedirectResponse(url, status_code=302)
    answer.set_cookie(_STATE_COOKIE, state, max_age=600, httponly=True, path=auth.cookie_path)
    return answer


@router.get("/oauth_callback")
async def oauth_callback(
    request: Request,
    gateway: GatewayState,
    code: Annotated[str, Query(max_length=4096)],
    state: Annotated[str, Query(max_length=4096)],
) -> Response:
    auth = _hub(gateway)
    if request.cookies.get(_STATE_COOKIE) != state:
        raise AccessDenied("auth.oauth-state", "the login's state does not match; log in again")
    cookie, next_url = await auth.finish_login(code, state)
    answer = RedirectResponse(next_url, status_code=302)
    answer.set_cookie(auth.cookie_name, cookie, httponly=True, path=auth.cookie_path)
    answer.delete_cookie(_STATE_COOKIE, path=auth.cookie_path)
    return answer
