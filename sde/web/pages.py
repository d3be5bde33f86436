"""What the services' server-rendered pages share: security headers, the service's base
URL, the CSRF token bound to the sign-in, the redirect to the hub's login, and reading a
form's body within a size limit.

Each service (:mod:`airlock.pages`, :mod:`access_committee.pages.base`) keeps its own
``Page``, form parser and error page; these are the pieces that are the same in both. The
shared template ``layout.html`` (in :data:`TEMPLATE_DIR`) is what each service's
``base.html`` extends: pass :func:`template_dirs` to the service's ``Jinja2Templates``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.gateway.auth import HubAuthenticator, header_token

#: Where ``layout.html`` lives.
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_STATE_COOKIE = "sde-gateway-oauth-state"  # the name sde.gateway.routes.oauth checks


class _Signed(Protocol):
    csrf: str


class _Form(Protocol):
    def get(self, name: str, default: str = "") -> str: ...


P = TypeVar("P", bound=_Signed)
F = TypeVar("F", bound=_Form)


def template_dirs(service_dir: Path) -> list[Path]:
    """A service's template directory first, then the shared one (for ``layout.html``)."""
    return [service_dir, TEMPLATE_DIR]


@dataclass
class PagesState:
    """``app.state.<service>_pages``: the per-process secret the CSRF tokens are signed with."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))


def secure(answer: Response, csp: str) -> None:
    """The headers every page carries: ``csp`` as its Content-Security-Policy."""
    answer.headers["Content-Security-Policy"] = csp
    answer.headers["X-Content-Type-Options"] = "nosniff"
    answer.headers["Cache-Control"] = "private, no-store"
    answer.headers["Referrer-Policy"] = "same-origin"


def render(
    templates: Jinja2Templates,
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int,
    csp: str,
) -> Response:
    """``template`` rendered with ``context``, carrying the headers of :func:`secure`."""
    answer = templates.TemplateResponse(request, template, context, status_code=status)
    secure(answer, csp)
    return answer


def base_url(request: Request) -> str:
    """The service's prefix, ending in ``/``."""
    prefix: str = request.app.state.gateway.settings.gateway_prefix
    return prefix.rstrip("/") + "/"


def csrf_token(scope: str, secret: bytes, user: str, session: str = "") -> str:
    """The token every form of ``user``'s carries in this sign-in ``session``: an HMAC of
    both (and the service's ``scope``) under ``secret``, so a token seen once is no use in
    another sign-in."""
    material = f"{scope}:{user}:{hashlib.sha256(session.encode()).hexdigest()}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()


def session_of(request: Request) -> str:
    """What names this sign-in: the hub's token (header) or the service's signed cookie."""
    auth = request.app.state.gateway.authenticate
    name = getattr(auth, "cookie_name", None)
    return header_token(request) or (request.cookies.get(name, "") if name else "")


def login_redirect(request: Request) -> Response | None:
    """For a browser's GET without a sign-in, the redirect to the hub's login; else None."""
    auth = request.app.state.gateway.authenticate
    if request.method == "GET" and isinstance(auth, HubAuthenticator):
        url, oauth_state = auth.login_url(str(request.url))
        answer = RedirectResponse(url, status_code=302)
        answer.set_cookie(
            _STATE_COOKIE, oauth_state, max_age=600, httponly=True, path=auth.cookie_path
        )
        return answer
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused (``limits.too-large``) past ``limit`` bytes, whether the
    length is declared or only found while reading."""
    too_large = InvalidInput("limits.too-large", f"the form is larger than {limit:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def page_url(base: str, *parts: str | int, done: str | None = None) -> str:
    """``base`` and the path ``parts`` (each quoted), with ``?done=`` when asked."""
    path = base + "/".join(quote(str(p), safe="") for p in parts)
    return path + (f"?done={done}" if done else "")


async def answer_get(
    page: P | Response,
    build: Callable[[P], Response],
    error_page: Callable[[SDEError], Response],
) -> Response:
    """``build(page)`` run in a thread; the answer for someone not signed in as it is; a
    refusal rendered by ``error_page``."""
    if isinstance(page, Response):
        return page
    try:
        return await run_in_threadpool(build, page)
    except SDEError as err:
        return error_page(err)


async def answer_post(
    page: P,
    read: Callable[[], Awaitable[F]],
    empty: F,
    act: Callable[[P, F], str | Response],
    refused: Callable[[P, F, SDEError], Response],
    error_page: Callable[[SDEError], Response],
    before_form: frozenset[str],
) -> Response:
    """Read the form, check its CSRF token against ``page.csrf``, ``act``; redirect (303) to
    the URL it names (or answer the page it renders).

    A refusal whose rule is in ``before_form`` or starts ``limits.`` or ``pages.`` renders
    as ``error_page``; any other renders ``refused(page, form, err)`` (``empty`` as the form
    if it was never read).
    """
    form = empty
    try:
        form = await read()
        if not hmac.compare_digest(form.get("csrf").encode(), page.csrf.encode()):
            raise AccessDenied(
                "pages.csrf", "the form has expired or did not come from this page; reload it"
            )
        target = await run_in_threadpool(act, page, form)
    except SDEError as err:
        if err.rule in before_form or err.rule.startswith(("limits.", "pages.")):
            return error_page(err)
        try:
            return await run_in_threadpool(refused, page, form, err)
        except SDEError as again:
            return error_page(again)
    if isinstance(target, Response):
        return target
    return RedirectResponse(target, status_code=303)


def ago(value: str | dt.datetime | None, now: dt.datetime) -> str:
    """How long ago an ISO time was, in words.

    >>> now = dt.datetime(2026, 1, 2, 12, tzinfo=dt.UTC)
    >>> ago("2026-01-02T11:59:30+00:00", now), ago("2026-01-01T09:00:00+00:00", now)
    ('under a minute', '1 day 3 hours')
    """
    if value is None:
        return ""
    then = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    seconds = max(0, int((now - then).total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, minutes = rest // 3600, rest % 3600 // 60

    def unit(n: int, word: str) -> str:
        return f"{n} {word}" + ("" if n == 1 else "s")

    if days:
        return unit(days, "day") + (f" {unit(hours, 'hour')}" if hours else "")
    if hours:
        return unit(hours, "hour") + (f" {unit(minutes, 'minute')}" if minutes else "")
    return unit(minutes, "minute") if minutes else "under a minute"
