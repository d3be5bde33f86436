"""What every committee page shares: who is asking, CSRF, the form parser, rendering.

A page module (``applicants``, ``review``, ``custodians``, ``home``, and the admin pages in
``access_committee.admin_pages``) declares ``router = APIRouter(include_in_schema=False)``
and writes each route as::

    @router.get("/things/{tid}")
    async def thing(request: Request, tid: int) -> Response:
        return await get_page(request, lambda page: page.render("thing.html", t=...))

    @router.post("/things/{tid}/close")
    async def close(request: Request, tid: int) -> Response:
        def act(page: Page, form: Form) -> str:
            page.committee.close(page.user, tid, form.get("reason"))  # the API's own method
            return page.url("things", tid, done="closed")

        return await post_page(request, act, lambda page, form, err: ...re-render with err)

:func:`get_page` and :func:`post_page` authenticate (pages redirect a browser without a
sign-in to the hub's login), :func:`post_page` reads the form with :data:`FORM_BYTES` as its
limit and checks the CSRF token, and an :class:`~sde.errors.SDEError` becomes a page with
its rule id and the status the JSON API would answer, never a 500. ``done`` confirmations
are fixed text, looked up in :data:`DONE` (add yours with :func:`confirmations`).
Templates extend ``base.html`` (blocks ``title``, ``main``; the ``banners`` list; macros
in ``macros.html``: ``error_summary(problems)``, ``field_error(problems, name)``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from access_committee.applications import Committee
from sde.accounts import get_user
from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.gateway.auth import HubAuthenticator, header_token
from sde.gateway.errors import status_of

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
_STATE_COOKIE = "sde-gateway-oauth-state"  # the name sde.gateway.routes.oauth checks
_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
#: Largest form a page takes (url-encoded; the committee's forms carry no files).
FORM_BYTES = 256_000
#: Most fields a form may send (a form with every column of every table ticked is ~400).
FORM_FIELDS = 4_000
#: The confirmations a redirect may ask for (``?done=``): fixed text, never echoed input.
DONE: dict[str, str] = {}


def confirmations(**texts: str) -> None:
    """Add ``?done=<key>`` confirmations (a page module calls this at import)."""
    DONE.update(texts)


@dataclass
class PagesState:
    """``app.state.committee_pages``: the per-process secret the CSRF tokens are signed with."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))


# -- who is asking -------------------------------------------------------------------------


@dataclass
class Page:
    """One page being answered: the caller, their roles and nodes, and the committee."""

    request: Request
    user: str
    committee: Committee
    roles: frozenset[str]
    nodes: frozenset[str]
    base: str
    csrf: str

    @property
    def member(self) -> bool:
        """A committee member."""
        return "committee" in self.roles

    @property
    def custodian(self) -> bool:
        return bool(self.nodes)

    @property
    def admin(self) -> bool:
        return "admin" in self.roles

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        """``template`` with what every page has (user, roles, base, csrf, ``done``)."""
        done = self.request.query_params.get("done")
        answer = TEMPLATES.TemplateResponse(
            self.request,
            template,
            {
                "user": self.user,
                "roles": self.roles,
                "nodes": sorted(self.nodes),
                "member": self.member,
                "custodian": self.custodian,
                "admin": self.admin,
                "base": self.base,
                "csrf": self.csrf,
                "done": DONE.get(done or ""),
                "now": self.committee.now(),
                "banners": [],
                **context,
            },
            status_code=status,
        )
        secure(answer)
        return answer

    def url(self, *parts: str | int, done: str | None = None) -> str:
        """The URL of a page of this service: ``page.url("applications", 3, done="saved")``."""
        path = self.base + "/".join(quote(str(p), safe="") for p in parts)
        return path + (f"?done={done}" if done else "")


def secure(answer: Response) -> None:
    answer.headers["Content-Security-Policy"] = _CSP
    answer.headers["X-Content-Type-Options"] = "nosniff"
    answer.headers["Cache-Control"] = "private, no-store"
    answer.headers["Referrer-Policy"] = "same-origin"


def base_url(request: Request) -> str:
    prefix: str = request.app.state.gateway.settings.gateway_prefix
    return prefix.rstrip("/") + "/"


def csrf_token(secret: bytes, user: str, session: str = "") -> str:
    """The token every form of ``user``'s carries in this sign-in ``session``: an HMAC of
    both under ``secret``, so a token seen once is no use in another sign-in."""
    material = f"committee-pages:{user}:{hashlib.sha256(session.encode()).hexdigest()}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()


def _session(request: Request) -> str:
    """What names this sign-in: the hub's token (header) or the service's signed cookie."""
    auth = request.app.state.gateway.authenticate
    name = getattr(auth, "cookie_name", None)
    return header_token(request) or (request.cookies.get(name, "") if name else "")


def _who(committee: Committee, user: str) -> tuple[frozenset[str], frozenset[str]]:
    try:
        info = get_user(committee.store, user)
    except SDEError:  # signed in at the hub but unknown to the registry: no roles
        return frozenset(), frozenset()
    return frozenset(info.roles), frozenset(info.nodes)


async def signed_in(request: Request) -> Page | Response:
    """The caller's page context, or the answer for someone not signed in (a redirect to
    the hub's login for a browser's GET; otherwise a 401 page)."""
    state = request.app.state
    user = await state.gateway.authenticate(request)
    if user is None:
        auth = state.gateway.authenticate
        if request.method == "GET" and isinstance(auth, HubAuthenticator):
            url, oauth_state = auth.login_url(str(request.url))
            answer = RedirectResponse(url, status_code=302)
            answer.set_cookie(
                _STATE_COOKIE, oauth_state, max_age=600, httponly=True, path=auth.cookie_path
            )
            return answer
        return error_page(
            request,
            AccessDenied(
                "auth.unauthenticated", "sign in through the workbench to use the committee"
            ),
        )
    committee: Committee = state.committee
    roles, nodes = await run_in_threadpool(_who, committee, str(user))
    pages: PagesState = state.committee_pages
    token = csrf_token(pages.secret, str(user), _session(request))
    return Page(request, str(user), committee, roles, nodes, base_url(request), token)


def error_page(request: Request, err: SDEError, status: int | None = None) -> Response:
    """A refusal as a page of its own: the message, the rule id, the API's status."""
    answer = TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"base": base_url(request), "user": None, "error": err, "banners": []},
        status_code=status or status_of(err),
    )
    secure(answer)
    return answer


def application_id(raw: str) -> int:
    """An application's number from a page's path; anything else is a missing application
    (a 404 page, as the API answers an unknown one, never the framework's JSON 422)."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) < 2**31:
        return int(raw)
    raise AccessDenied("committee.unknown", f"there is no application {raw[:40]!r}")


def not_found(what: str = "this page") -> AccessDenied:
    """What a page someone may not see answers (404, like the API's unknown things)."""
    return AccessDenied("pages.not-found", f"there is no {what} for you here")


async def get_page(request: Request, build: Callable[[Page], Response]) -> Response:
    """Answer a GET with ``build(page)`` (run in a thread); a refusal renders as a page."""
    page = await signed_in(request)
    if isinstance(page, Response):
        return page
    try:
        return await run_in_threadpool(build, page)
    except SDEError as err:
        return error_page(request, err)


# -- forms ---------------------------------------------------------------------------------


@dataclass
class Form:
    """A url-encoded form: every (name, value) pair in order, repeated names kept."""

    pairs: list[tuple[str, str]]

    def get(self, name: str, default: str = "") -> str:
        """The last value sent for ``name`` (``default`` when none)."""
        for key, value in reversed(self.pairs):
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        """Every value sent for ``name``, in order (ticked checkboxes, repeated fields)."""
        return [value for key, value in self.pairs if key == name]

    def names(self) -> set[str]:
        return {key for key, _ in self.pairs}


async def read_form(request: Request, limit: int = FORM_BYTES) -> Form:
    """The body as a url-encoded form, refused (``limits.too-large``) past ``limit`` bytes
    or :data:`FORM_FIELDS` fields, and (``pages.form``) when it is not a UTF-8 form."""
    kind = request.headers.get("content-type", "")
    declared = request.headers.get("content-length", "")
    too_large = InvalidInput("limits.too-large", f"the form is larger than {limit:,} bytes")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    if body and not kind.startswith("application/x-www-form-urlencoded"):
        raise InvalidInput("pages.form", "send the page's form (url-encoded)")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_FIELDS)
    except UnicodeDecodeError:
        raise InvalidInput("pages.form", "the form is not UTF-8") from None
    except ValueError:
        raise InvalidInput(
            "limits.too-large", f"the form has more than {FORM_FIELDS:,} fields"
        ) from None
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise InvalidInput("pages.form", "the form holds a NUL character, which no field takes")
    return Form(pairs)


#: Refusals shown as a page of their own (they can come before the form is read).
_BEFORE_FORM = frozenset({"committee.unknown", "project.unknown", "pages.not-found"})


async def post_page(
    request: Request,
    act: Callable[[Page, Form], str | Response],
    refused: Callable[[Page, Form, SDEError], Response],
) -> Response:
    """Authenticate, read and check the form, ``act``; redirect (303) to the URL it names
    (or answer the page it renders: a form re-shown with something looked up, no change).

    A refusal renders ``refused(page, form, err)`` (the page the form was on, every typed
    value in it, with the rule); a missing or unseen thing renders as missing.
    """
    page = await signed_in(request)
    if isinstance(page, Response):
        return page
    form = Form([])
    try:
        form = await read_form(request)
        if not hmac.compare_digest(form.get("csrf").encode(), page.csrf.encode()):
            raise AccessDenied(
                "pages.csrf", "the form has expired or did not come from this page; reload it"
            )
        target = await run_in_threadpool(act, page, form)
    except SDEError as err:
        if err.rule in _BEFORE_FORM or err.rule.startswith(("limits.", "pages.")):
            return error_page(request, err)
        try:
            return await run_in_threadpool(refused, page, form, err)
        except SDEError as again:
            return error_page(request, again)
    if isinstance(target, Response):
        return target
    return RedirectResponse(target, status_code=303)


# -- what the templates show ---------------------------------------------------------------


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


def words(value: str) -> str:
    """A state or vote as words: ``approved_with_conditions`` -> ``approved with conditions``."""
    return str(value).replace("_", " ")


def problems_by_field(problems: Iterable[dict[str, str]]) -> dict[str, list[str]]:
    """``[{"field", "message"}]`` grouped by field, for messages beside each field."""
    found: dict[str, list[str]] = {}
    for p in problems:
        found.setdefault(p["field"], []).append(p["message"])
    return found


TEMPLATES.env.filters["ago"] = ago
TEMPLATES.env.filters["words"] = words
TEMPLATES.env.filters["seg"] = lambda value: quote(str(value), safe="")
