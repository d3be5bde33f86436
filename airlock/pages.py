"""The airlock's pages: server-rendered HTML over the same :class:`~airlock.requests.Airlock`.

Researchers: ``/`` (my requests), ``requests/new``, ``requests/{id}`` (files per group,
context and controls, checks, comments, submit, withdraw, the answer to a return, the
download of released files). Output checkers: ``queue`` (requests they may review: state,
project, author, time in state, check status) and, per file, ``requests/{id}/files/{group}/
{name}`` (the table with flagged cells highlighted beside the flags and the report; votes).

Every form POSTs to a page route that calls one ``Airlock`` method, so no rule is written
twice; which buttons show is read from the view's ``actions``. A refusal renders the page
again with the rule id and the status the JSON API would answer (never a 500). Forms carry a
CSRF token, an HMAC of the user under a per-process secret, checked on every POST. Browsers
sign in through the hub's OAuth (a signed cookie, :mod:`sde.web.shell`); forms are parsed
here (url-encoded and multipart) with the service's size limit.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from airlock import checks
from airlock.contents import hidden_text
from airlock.requests import Airlock
from sde.errors import AccessDenied, InvalidInput, SDEError
from sde.gateway.errors import status_of
from sde.registry.airlock import AirlockFile, AirlockGroup, AirlockReview
from sde.registry.people import UserRole
from sde.registry.projects import Membership
from sde.web import pages as shared
from sde.web.pages import PagesState, ago
from sde.web.pages import base_url as _base
from sde.web.pages import session_of as _session

TEMPLATES = Jinja2Templates(directory=shared.template_dirs(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

RequestId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Rows of a table shown on the file page (the flags list every flagged cell regardless).
PREVIEW_ROWS = 500
PREVIEW_CHARS = 20_000
#: A form without files is small; one with files takes the service's size limit, ten times.
FORM_BYTES = 256_000
FILES_PER_FORM = 10
#: The confirmations a redirect may ask for (``?done=``): fixed text, never echoed input.
DONE = {
    "created": "Your request was created. Add files, then describe each group.",
    "added": "The files were added.",
    "deleted": "The file was removed.",
    "group": "The group's context and controls were saved.",
    "submitted": "Your request was submitted: the files were checked and it is with the "
    "output checkers.",
    "withdrawn": "The request was withdrawn.",
    "voted": "Your vote was recorded.",
    "reviewed": "Your review was submitted.",
    "commented": "Your comment was added.",
    "returned": "The request was returned to its author.",
    "rejected": "The request was rejected.",
    "released": "The request was released: its author can download the files.",
}
STATUS_TEXT = {
    "pass": "Pass",
    "fail": "Fail",
    "review": "Needs review",
    "none": "Not checked",
}


def install(app: FastAPI, prefix: str) -> None:
    """Serve the pages under ``prefix``, ahead of the shell's "coming" home page.

    Routes match in order, so the pages' router goes first: its ``/`` is the home page.
    """
    app.state.airlock_pages = PagesState()
    app.include_router(router, prefix=prefix.rstrip("/"))
    app.router.routes.insert(0, app.router.routes.pop())


# -- who is asking -------------------------------------------------------------------------


@dataclass
class Page:
    """One page being answered: the caller and what the templates need."""

    request: Request
    user: str
    airlock: Airlock
    roles: frozenset[str]
    base: str
    csrf: str

    @property
    def checker(self) -> bool:
        return "output-checker" in self.roles

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        done = self.request.query_params.get("done")
        return shared.render(
            TEMPLATES,
            self.request,
            template,
            {
                "user": self.user,
                "base": self.base,
                "csrf": self.csrf,
                "checker": self.checker,
                "done": DONE.get(done or ""),
                "status_text": STATUS_TEXT,
                **context,
            },
            status,
            _CSP,
        )

    def url(self, *parts: str | int, done: str | None = None) -> str:
        return shared.page_url(self.base, *parts, done=done)


def csrf_token(secret: bytes, user: str, session: str = "") -> str:
    """The token every form of ``user``'s carries in this sign-in ``session``
    (:func:`sde.web.pages.csrf_token` scoped to the airlock's pages)."""
    return shared.csrf_token("airlock-pages", secret, user, session)


def _token(request: Request, user: str) -> str:
    pages: PagesState = request.app.state.airlock_pages
    return csrf_token(pages.secret, user, _session(request))


def _roles(airlock: Airlock, user: str) -> frozenset[str]:
    with airlock.store.read() as session:
        return frozenset(session.scalars(select(UserRole.role).where(UserRole.username == user)))


async def _page(request: Request) -> Page | Response:
    """The caller's page context, or the answer for someone not signed in."""
    user = await request.app.state.gateway.authenticate(request)
    if user is None:
        return shared.login_redirect(request) or _error_page(
            request,
            AccessDenied(
                "auth.unauthenticated", "sign in through the workbench to use the airlock"
            ),
        )
    airlock: Airlock = request.app.state.airlock
    roles = await run_in_threadpool(_roles, airlock, str(user))
    return Page(request, str(user), airlock, roles, _base(request), _token(request, str(user)))


def _error_page(request: Request, err: SDEError, status: int | None = None) -> Response:
    return shared.render(
        TEMPLATES,
        request,
        "error.html",
        {"base": _base(request), "user": None, "error": err, "checker": False},
        status or status_of(err),
        _CSP,
    )


async def _get(request: Request, build: Callable[[Page], Response]) -> Response:
    return await shared.answer_get(
        await _page(request), build, lambda err: _error_page(request, err)
    )


# -- forms ---------------------------------------------------------------------------------


@dataclass
class Form:
    fields: dict[str, str]
    files: list[tuple[str, bytes]]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


async def _read_form(request: Request, airlock: Airlock) -> Form:
    kind = request.headers.get("content-type", "")
    limit = FORM_BYTES
    if kind.startswith("multipart/form-data"):
        limit += int(airlock.max_file_mb * 1_000_000) * FILES_PER_FORM
    body = await shared.read_body(request, limit)
    if kind.startswith("multipart/form-data"):
        return parse_multipart(body, kind)
    if kind.startswith("application/x-www-form-urlencoded") or not body:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise InvalidInput("pages.form", "the form is not UTF-8") from None
        return Form(dict(pairs), [])
    raise InvalidInput("pages.form", "send the page's form (url-encoded or multipart)")


_BOUNDARY = re.compile(r';\s*boundary="?([^";]{1,70})"?')
_NAME = re.compile(r';\s*name="([^"]*)"')
_FILENAME = re.compile(r';\s*filename="([^"]*)"')


def parse_multipart(body: bytes, content_type: str) -> Form:
    """A ``multipart/form-data`` body (RFC 7578) as a browser sends it.

    >>> body = (b'--b\\r\\nContent-Disposition: form-data; name="group"\\r\\n\\r\\ntables\\r\\n'
    ...         b'--b\\r\\nContent-Disposition: form-data; name="file"; filename="a.csv"\\r\\n'
    ...         b'Content-Type: text/csv\\r\\n\\r\\nx,y\\r\\n1,2\\r\\n--b--\\r\\n')
    >>> form = parse_multipart(body, "multipart/form-data; boundary=b")
    >>> form.fields, form.files
    ({'group': 'tables'}, [('a.csv', b'x,y\\r\\n1,2')])
    """
    match = _BOUNDARY.search(content_type)
    if not match:
        raise InvalidInput("pages.form", "the form has no multipart boundary")
    delimiter = b"\r\n--" + match.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    files: list[tuple[str, bytes]] = []
    parts = (b"\r\n" + body).split(delimiter)
    for part in parts[1:]:
        if part.startswith(b"--"):
            return Form(fields, files)
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"\r\n"):
            raise InvalidInput("pages.form", "the multipart form is malformed")
        disposition = ""
        for line in head[2:].decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition = value
        name = _NAME.search(disposition)
        if name is None:
            raise InvalidInput("pages.form", "a part of the form has no name")
        filename = _FILENAME.search(disposition)
        if filename is None:
            fields[name.group(1)] = content.decode("utf-8", "replace")
        elif filename.group(1):  # a file input left empty sends an empty name
            if len(files) >= FILES_PER_FORM:
                raise InvalidInput(
                    "limits.too-many-files", f"at most {FILES_PER_FORM} files at a time"
                )
            files.append((_unescape(filename.group(1)), content))
    raise InvalidInput("pages.form", "the multipart form is not terminated")


def _unescape(name: str) -> str:
    """Browsers send ``"``, CR and LF in a file name as %22, %0D, %0A (HTML's form rules)."""
    return name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


#: Refusals that can come before the form is read: shown as a page of their own.
_BEFORE_FORM = frozenset({"airlock.unknown", "pages.csrf", "pages.form"})


async def _post(
    request: Request,
    act: Callable[[Page, Form], str],
    refused: Callable[[Page, Form, SDEError], Response],
) -> Response:
    """Authenticate, read and check the form, act; redirect to the URL ``act`` names.

    A refusal renders ``refused`` (the page the form was on, with the rule); a request the
    caller may not see renders as missing.
    """
    page = await _page(request)
    if isinstance(page, Response):
        return page
    return await shared.answer_post(
        page,
        lambda: _read_form(request, page.airlock),
        Form({}, []),
        act,
        refused,
        lambda err: _error_page(request, err),
        _BEFORE_FORM,
    )


# -- researchers ---------------------------------------------------------------------------


def _projects(airlock: Airlock, user: str) -> list[str]:
    with airlock.store.read() as session:
        return list(
            session.scalars(
                select(Membership.project)
                .where(Membership.username == user)
                .order_by(Membership.project)
            )
        )


def _home(page: Page) -> Response:
    mine = [r for r in page.airlock.list_for(page.user) if r["author"] == page.user]
    waiting = len(_queue(page)) if page.checker else 0
    return page.render(
        "home.html",
        requests=mine,
        projects=_projects(page.airlock, page.user),
        waiting=waiting,
        now=page.airlock.now(),
    )


@router.get("/")
async def home(request: Request) -> Response:
    return await _get(request, _home)


def _new(page: Page, error: SDEError | None = None, status: int = 200) -> Response:
    return page.render("new.html", status, projects=_projects(page.airlock, page.user), error=error)


@router.get("/requests/new")
async def new_request(request: Request) -> Response:
    return await _get(request, _new)


@router.post("/requests")
async def create(request: Request) -> Response:
    def act(page: Page, form: Form) -> str:
        made = page.airlock.create(page.user, form.get("project"))
        return page.url("requests", made["id"], done="created")

    return await _post(request, act, lambda p, f, err: _new(p, err, status_of(err)))


def _request_page(
    page: Page, rid: int, error: SDEError | None = None, status: int = 200
) -> Response:
    view = page.airlock.get(page.user, rid)
    return page.render(
        "request.html",
        status,
        r=view,
        error=error,
        now=page.airlock.now(),
        my_votes=_my_votes(view, page.user),
        group_names=[g["name"] for g in view["groups"]],
        summary=_status_counts(
            [f["checks"]["status"] for g in view["groups"] for f in g["files"] if _out(f)]
        ),
        **_shown(page, view),
    )


@router.get("/requests/{rid}")
async def show(request: Request, rid: RequestId) -> Response:
    return await _get(request, lambda page: _request_page(page, rid))


def _on_request(rid: int) -> Callable[[Page, Form, SDEError], Response]:
    """Where a refused form renders: its file page (``back=file``) or the request page."""

    def refused(page: Page, form: Form, err: SDEError) -> Response:
        if form.get("back") == "file":
            return _file_page(page, rid, form.get("group"), form.get("name"), err, status_of(err))
        return _request_page(page, rid, err, status_of(err))

    return refused


def _back(page: Page, rid: int, form: Form, done: str) -> str:
    if form.get("back") == "file":
        return page.url("requests", rid, "files", form.get("group"), form.get("name"), done=done)
    return page.url("requests", rid, done=done)


async def _action(
    request: Request, rid: int, do: Callable[[Page, Form], object], done: str
) -> Response:
    """A form on a request's page (or one of its file pages): do it, then go back there."""

    def act(page: Page, form: Form) -> str:
        do(page, form)
        return _back(page, rid, form, done)

    return await _post(request, act, _on_request(rid))


@router.post("/requests/{rid}/files")
async def add_files(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        if not form.files:
            raise InvalidInput("pages.no-file", "choose at least one file to add")
        group = form.get("group").strip()
        for name, data in form.files:
            page.airlock.add_file(page.user, rid, group, name, data, form.get("kind", "output"))

    return await _action(request, rid, do, "added")


@router.post("/requests/{rid}/files/delete")
async def delete_file(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        page.airlock.delete_file(page.user, rid, form.get("group"), form.get("name"))

    return await _action(request, rid, do, "deleted")


@router.post("/requests/{rid}/groups")
async def edit_group(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        page.airlock.edit_group(
            page.user,
            rid,
            form.get("group").strip(),
            context=form.get("context"),
            controls=form.get("controls"),
        )

    return await _action(request, rid, do, "group")


@router.post("/requests/{rid}/submit")
async def submit(request: Request, rid: RequestId) -> Response:
    return await _action(request, rid, lambda p, f: p.airlock.submit(p.user, rid), "submitted")


@router.post("/requests/{rid}/withdraw")
async def withdraw(request: Request, rid: RequestId) -> Response:
    return await _action(request, rid, lambda p, f: p.airlock.withdraw(p.user, rid), "withdrawn")


@router.post("/requests/{rid}/comments")
async def comment(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        page.airlock.comment(
            page.user,
            rid,
            form.get("text"),
            visibility=form.get("visibility", "public"),
            group=form.get("group") or None,
        )

    return await _action(request, rid, do, "commented")


# -- output checkers -----------------------------------------------------------------------


@router.post("/requests/{rid}/vote")
async def vote(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        page.airlock.vote(
            page.user,
            rid,
            form.get("group"),
            form.get("name"),
            form.get("vote"),
            sha256=form.get("sha256") or None,
        )

    return await _action(request, rid, do, "voted")


@router.post("/requests/{rid}/review")
async def review(request: Request, rid: RequestId) -> Response:
    return await _action(request, rid, lambda p, f: p.airlock.review(p.user, rid), "reviewed")


@router.post("/requests/{rid}/return")
async def return_request(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        page.airlock.return_request(page.user, rid, form.get("comment"))

    return await _action(request, rid, do, "returned")


@router.post("/requests/{rid}/reject")
async def reject(request: Request, rid: RequestId) -> Response:
    def do(page: Page, form: Form) -> None:
        page.airlock.reject(page.user, rid, form.get("comment"))

    return await _action(request, rid, do, "rejected")


@router.post("/requests/{rid}/release")
async def release(request: Request, rid: RequestId) -> Response:
    return await _action(request, rid, lambda p, f: p.airlock.release(p.user, rid), "released")


def _queue(page: Page) -> list[dict[str, Any]]:
    """The requests waiting for output checkers that the caller may review, oldest first."""
    shown = [
        r
        for r in page.airlock.list_for(page.user)
        if r["author"] != page.user and "checker" in r["waiting_for"]
    ]
    ids = [r["id"] for r in shown]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    if ids:
        with page.airlock.store.read() as session:
            rows = session.execute(
                select(AirlockGroup.request_id, AirlockFile.checks_status, func.count())
                .join(AirlockGroup, AirlockFile.group_id == AirlockGroup.id)
                .where(AirlockGroup.request_id.in_(ids), AirlockFile.kind == "output")
                .group_by(AirlockGroup.request_id, AirlockFile.checks_status)
            )
            for rid, status, n in rows:
                counts[rid][status] = n
    for r in shown:
        r["checks"] = _status_counts([s for s, n in counts[r["id"]].items() for _ in range(n)])
    return sorted(shown, key=lambda r: r["state_changed_at"])


def _queue_page(page: Page) -> Response:
    if not page.checker:  # the queue is not there for anyone else
        return _error_page(
            page.request,
            AccessDenied("airlock.not-a-checker", "the review queue is for output checkers"),
            404,
        )
    return page.render("queue.html", requests=_queue(page), now=page.airlock.now())


@router.get("/queue")
async def queue(request: Request) -> Response:
    return await _get(request, _queue_page)


def _file_page(
    page: Page, rid: int, group: str, name: str, error: SDEError | None = None, status: int = 200
) -> Response:
    view = page.airlock.get(page.user, rid)
    found = [
        (g, f)
        for g in view["groups"]
        if g["name"] == group
        for f in g["files"]
        if f["name"] == name
    ]
    if not found:
        raise InvalidInput("airlock.unknown-file", f"the request has no file {name!r} in {group!r}")
    the_group, the_file = found[0]
    _, data = page.airlock.read_file(page.user, rid, group, name)
    report = the_file["checks"].get("report") or {}
    entries = list((report.get("results") or {}).values())
    return page.render(
        "file.html",
        status,
        r=view,
        group=the_group,
        f=the_file,
        error=error,
        preview=preview(name, data, entries),
        hidden=hidden_text(name, data),
        whole=f"{page.base}api/requests/{rid}/groups/{quote(group)}/files/{quote(name)}",
        entries=entries,
        report_json=json.dumps(report, indent=2) if report else "",
        my_vote=_my_votes(view, page.user).get((group, name)),
        **_shown(page, view),
    )


@router.get("/requests/{rid}/files/{group}/{name}")
async def file_page(request: Request, rid: RequestId, group: str, name: str) -> Response:
    return await _get(request, lambda page: _file_page(page, rid, group, name))


# -- what the templates show ---------------------------------------------------------------


def _out(file: dict[str, Any]) -> bool:
    return bool(file["kind"] == "output")


def _reviewed(page: Page, view: dict[str, Any]) -> bool:
    """Whether the caller submitted their review of the request's current turn."""
    with page.airlock.store.read() as session:
        found = session.scalar(
            select(AirlockReview.submitted_at).where(
                AirlockReview.request_id == view["id"],
                AirlockReview.turn == view["turn"],
                AirlockReview.reviewer == page.user,
            )
        )
    return found is not None


def _shown(page: Page, view: dict[str, Any]) -> dict[str, bool]:
    """Which of the view's actions are worth a button now (the service decides all the same).

    A checker whose review of this turn is in has nothing left to vote on; a reviewed
    request takes votes on conflicted files only, and is released once every output file
    is approved.
    """
    decisions = [f["decision"] for g in view["groups"] for f in g["files"] if _out(f)]
    reviewed = view["you"] == "checker" and _reviewed(page, view)
    settling = view["state"] == "reviewed"
    conflicted = "conflicted" in decisions
    return {
        "can_vote": "vote" in view["actions"] and not reviewed,
        "only_conflicted": settling,
        "can_review": "review" in view["actions"] and not reviewed and (not settling or conflicted),
        "reviewed": reviewed,
        "can_release": "release" in view["actions"]
        and (view["state"] == "approved" or (bool(decisions) and set(decisions) == {"approved"})),
    }


def _my_votes(view: dict[str, Any], user: str) -> dict[tuple[str, str], str]:
    return {
        (v["group"], v["file"]): v["vote"]
        for v in view["votes"]
        if v["reviewer"] == user and v["turn"] == view["turn"]
    }


def _status_counts(statuses: list[str]) -> dict[str, int]:
    """How many files have each status, worst first (``fail``, ``review``, ``pass``, ``none``)."""
    return {s: statuses.count(s) for s in ("fail", "review", "pass", "none") if s in statuses}


def preview(name: str, data: bytes, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What the file page shows of a file: tables (cells flagged), an image or text.

    Tables are read exactly as the checks read them (:mod:`airlock.checks`), so a flag's row
    and column name the cell shown. Flags come from the report's entries, per table.
    """
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind in ("png", "svg"):
        media = "image/png" if kind == "png" else "image/svg+xml"
        encoded = base64.b64encode(data).decode("ascii")
        return {"kind": "image", "src": f"data:{media};base64,{encoded}"}
    try:
        tables = checks._tables(name, kind, data)
    except Exception as err:  # the checks said so too: the page shows why
        return {"kind": "none", "reason": f"the file could not be read as a table ({err})"}
    if tables is None:
        if kind in ("txt", "md", "json", "html"):
            text = data.decode("utf-8", "replace")
            return {
                "kind": "text",
                "text": text[:PREVIEW_CHARS],
                "cut": len(text) > PREVIEW_CHARS,
            }
        return {"kind": "none", "reason": f"a {kind or 'typeless'} file cannot be shown here"}
    by_uid = {e.get("uid"): e for e in entries}
    return {
        "kind": "tables",
        "tables": [_table(uid, frame, by_uid.get(uid, {})) for uid, frame in tables],
    }


def _table(uid: str, frame: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """A table's first rows as cells, each with the rules that flag it and its severity."""
    columns = [str(c) for c in frame.columns]
    severity = {rule: info.get("status", "fail") for rule, info in entry.get("rules", {}).items()}
    cells: dict[tuple[int, str], list[str]] = {}
    whole: dict[str, list[str]] = {}
    for flag in entry.get("flags", []):
        column = flag.get("column")
        if column is None:
            continue
        if flag.get("row") is None:
            whole.setdefault(str(column), []).append(flag["rule"])
        else:
            cells.setdefault((int(flag["row"]), str(column)), []).append(flag["rule"])

    def cell(text: str, rules: list[str]) -> dict[str, Any]:
        rules = sorted(set(rules))
        worst = checks.worst(*(severity.get(r, "fail") for r in rules)) if rules else ""
        return {"text": text, "rules": rules, "severity": worst}

    rows = [
        [
            cell("" if _missing(v) else str(v), cells.get((i, c), []) + whole.get(c, []))
            for c, v in zip(columns, values, strict=True)
        ]
        for i, values in enumerate(frame.head(PREVIEW_ROWS).itertuples(index=False, name=None))
    ]
    return {
        "uid": uid,
        "columns": [cell(c, whole.get(c, [])) for c in columns],
        "rows": rows,
        "total": len(frame),
        "flagged": len(cells) + len(whole),
    }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def size(n: int) -> str:
    """A file size in words: ``size(2048) == '2.0 kB'``."""
    if n < 1000:
        return f"{n} bytes"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1_000_000:.1f} MB"


TEMPLATES.env.filters["ago"] = ago
TEMPLATES.env.filters["size"] = size
TEMPLATES.env.filters["seg"] = lambda value: quote(str(value), safe="")
