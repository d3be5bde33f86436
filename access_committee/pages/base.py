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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from access_committee.applications import Committee
from sde.accounts import get_user
from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.gateway.errors import status_of
from sde.web import pages as shared
from sde.web.pages import PagesState, ago, base_url
from sde.web.pages import session_of as _session

__all__ = ["PagesState", "ago", "base_url", "csrf_token"]

TEMPLATES = Jinja2Templates(
    directory=shared.template_dirs(Path(__file__).resolve().parent.parent / "templates")
)
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
        return shared.render(
            TEMPLATES,
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
            status,
            _CSP,
        )

    def url(self, *parts: str | int, done: str | None = None) -> str:
        """The URL of a page of this service: ``page.url("applications", 3, done="saved")``."""
        return shared.page_url(self.base, *parts, done=done)


def secure(answer: Response) -> None:
    """The pages' security headers (the committee's Content-Security-Policy)."""
    shared.secure(answer, _CSP)


def csrf_token(secret: bytes, user: str, session: str = "") -> str:
    """The token every form of ``user``'s carries in this sign-in ``session``
    (:func:`sde.web.pages.csrf_token` scoped to the committee's pages)."""
    return shared.csrf_token("committee-pages", secret, user, session)


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
        return shared.login_redirect(request) or error_page(
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
    return shared.render(
        TEMPLATES,
        request,
        "error.html",
        {"base": base_url(request), "user": None, "error": err, "banners": []},
        status or status_of(err),
        _CSP,
    )


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
    return await shared.answer_get(
        await signed_in(request), build, lambda err: error_page(request, err)
    )


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
    body = await shared.read_body(request, limit)
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
    return await shared.answer_post(
        page,
        lambda: read_form(request),
        Form([]),
        act,
        refused,
        lambda err: error_page(request, err),
        _BEFORE_FORM,
    )


# -- what the templates show ---------------------------------------------------------------


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
