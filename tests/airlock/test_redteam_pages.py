"""Red team, round two: the airlock's server-rendered pages (airlock/pages.py, templates).

Each test is an attack. A failing test is a hole still open; a passing one is an attack
that failed and is kept as a guard (stored XSS, open redirects, CSRF across users, bytes
reaching the author before release, frame and cache headers, audit of file views).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from airlock.workflow import State
from sde.registry.audit_log import AuditEntry
from tests.airlock.http import PREFIX, airlock_client, csrf, headers, page, post
from tests.airlock.world import World, make_world

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World, tmp_path: Path) -> Iterator[TestClient]:
    with airlock_client(world, tmp_path) as c:
        yield c


def no_raw_markup(text: str) -> None:
    assert "<script>alert(1)" not in text
    assert "<img src=x onerror" not in text
    assert 'onerror=alert(2)>"' not in text


# -- odd form bodies: a 500 is not an answer -----------------------------------------------


def test_eleven_files_in_one_form_is_a_refusal_not_a_500(world: World, client: TestClient) -> None:
    """Attack: POST a multipart form with 11 files (one over FILES_PER_FORM) to any page route.

    ``parse_multipart`` raises ``InvalidInput("limits.too-many-files")``; ``_post`` only
    turns four rules into the error page and hands any other to ``refused(page, form, err)``
    -- but ``form`` was never bound (``_read_form`` raised), so an ``UnboundLocalError``
    escapes as a 500. The form is parsed before the CSRF token is checked, so any site can
    make a signed-in browser do this (no token needed): a reliable, anonymous-origin 500.
    (airlock/pages.py, ``_post``: the ``except SDEError`` branch uses ``form``.)
    """
    rid = world.draft()
    files = [("files", (f"t{i}.csv", b"a,b\n1,2\n")) for i in range(11)]
    answer = post(client, "ada", f"requests/{rid}/files", {"group": "tables"}, files)
    assert answer.status_code == 400, answer.text[:300]
    assert "[limits.too-many-files]" in answer.text
    # and with no token at all (a cross-site form): refused, never a 500
    forged = post(client, "ada", f"requests/{rid}/comments", {"text": "x"}, files, token="")
    assert forged.status_code in (400, 403), forged.text[:300]


def test_a_non_ascii_csrf_token_is_a_refusal_not_a_500(world: World, client: TestClient) -> None:
    """Attack: send ``csrf=é`` (any non-ASCII text) with a page form.

    ``hmac.compare_digest`` on two ``str`` raises ``TypeError`` when either holds non-ASCII
    characters, so the CSRF check itself crashes: a 500 instead of ``[pages.csrf]``. A
    cross-site page can trigger it in a checker's browser at will (it needs no token), and
    the crash is logged as a server fault, noise that hides real ones.
    (airlock/pages.py, ``_post``: ``hmac.compare_digest(form.get("csrf"), page.csrf)``.)
    """
    rid = world.reach(State.SUBMITTED)
    answer = post(client, "olu", f"requests/{rid}/comments", {"text": "hello"}, token="é")  # noqa: S106
    assert answer.status_code == 403, answer.text[:300]
    assert "[pages.csrf]" in answer.text


def test_a_page_upload_within_the_file_limit_is_not_a_json_413(
    world: World, tmp_path: Path
) -> None:
    """Attack (availability): upload, through the page's own form, a 2 MB file to a service
    whose file limit is 5 MB.

    The shell's ``BodyLimit`` middleware caps every body at 1 MB and exempts only
    ``PUT .../files/`` (the API's upload), so the page's ``POST requests/{id}/files`` is
    cut off there: the browser gets a bare JSON 413 instead of the page, and the page's own
    limit (``FORM_BYTES`` plus ten times the file limit) is dead code. Researchers are
    pushed to other ways of moving their results. (sde/web/limits.py ``is_upload``;
    airlock/pages.py ``_read_form``.)
    """
    world.airlock.max_file_mb = 5
    with airlock_client(world, tmp_path) as c:
        rid = world.draft()
        big = b"a,b\n" + b"1000,2000\n" * 200_000  # 2 MB
        answer = post(
            c, "ada", f"requests/{rid}/files", {"group": "tables"}, [("files", ("big.csv", big))]
        )
        assert answer.status_code == 303, (answer.status_code, answer.text[:200])


def test_malformed_multipart_bodies_are_refused_pages(world: World, client: TestClient) -> None:
    """Attack: multipart bodies with no boundary, no terminator, a nameless part, a junk
    boundary, duplicate csrf fields, a non-UTF-8 url-encoded body. Each must be an error page
    (4xx, text/html), never a 500. (Held.)"""
    rid = world.draft()
    url = PREFIX + f"requests/{rid}/comments"
    token = csrf(client, "ada").encode()
    bodies = [
        ("multipart/form-data", b"--b\r\n"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n' + token,
        ),
        (
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
        ),
        ("multipart/form-data; boundary=b", b"garbage"),
        ("multipart/form-data; boundary=b", b"--b\r\nno-headers-here--b--"),
        ("application/x-www-form-urlencoded", b"csrf=\xff\xfe&text=x"),
        ("text/plain", b"csrf=" + token),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nnope\r\n'
            b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
            + token
            + b"\r\n--b--\r\n",
        ),
    ]
    for kind, body in bodies:
        answer = client.post(
            url,
            content=body,
            headers={**headers("ada"), "Content-Type": kind},
            follow_redirects=False,
        )
        assert answer.status_code < 500, (kind, body, answer.text[:200])


# -- CSRF ----------------------------------------------------------------------------------


def test_another_users_csrf_token_is_refused(world: World, client: TestClient) -> None:
    """Attack: tom (any signed-in user) reads his own token off a page and plants it in a
    form that ada's browser posts (withdraw her request). Tokens are an HMAC of the user, so
    tom's token is not ada's. (Held.)"""
    rid = world.reach(State.SUBMITTED)
    tom = csrf(client, "tom")
    answer = post(client, "ada", f"requests/{rid}/withdraw", token=tom)
    assert answer.status_code == 403
    assert "[pages.csrf]" in answer.text
    assert world.airlock.get("ada", rid)["state"] == State.SUBMITTED.value


def test_get_routes_have_no_side_effects(world: World, client: TestClient) -> None:
    """Attack: an <img src> on another site pointing at the page routes' action URLs with GET
    (withdraw, release, vote). They are POST-only: GET is 405 and nothing moves. (Held.)"""
    rid = world.reach(State.SUBMITTED)
    for action in ("withdraw", "release", "review", "submit", "vote?vote=approve"):
        answer = page(client, "ada", f"requests/{rid}/{action}")
        assert answer.status_code in (404, 405)
    assert world.airlock.get("ada", rid)["state"] == State.SUBMITTED.value


# -- stored XSS ----------------------------------------------------------------------------


def test_researcher_text_is_escaped_everywhere(world: World, client: TestClient) -> None:
    """Attack: ada puts script into every text she controls -- a file name, a group name,
    the group's context and controls, a comment, CSV header and cell values, a text file --
    then the checker opens the request and file pages. Autoescaping holds in element
    content and attributes (hidden inputs, <option value>, href segments). (Held.)"""
    rid = world.draft()
    name = "cells.csv"  # file and group names are plain by rule (letters, digits, ._()+-)
    group = "tables"
    csv = b'"<script>alert(1)</script>",b\n"<img src=x onerror=alert(2)>",200\n'
    world.airlock.add_file("ada", rid, group, name, csv)
    world.airlock.add_file("ada", rid, group, "n.html", XSS.encode())
    world.airlock.edit_group("ada", rid, group, context=XSS, controls=XSS)
    world.airlock.comment("ada", rid, XSS)
    world.airlock.submit("ada", rid)
    for who in ("ada", "olu"):
        text = page(client, who, f"requests/{rid}").text
        no_raw_markup(text)
        assert "<script>alert(1)<!--" not in text
    from urllib.parse import quote

    for f in (name, "n.html"):
        answer = page(
            client, "olu", f"requests/{rid}/files/{quote(group, safe='')}/{quote(f, safe='')}"
        )
        assert answer.status_code == 200, answer.text[:300]
        no_raw_markup(answer.text)
        assert "<script>alert(1)<!--" not in answer.text


def test_an_svg_preview_cannot_run_script(world: World, client: TestClient) -> None:
    """Attack: an SVG figure with <script> and an onload handler. It is shown only as a
    data: URI in <img> (SVG in an image context never runs script) and the page's CSP has
    no script-src; the SVG's markup never appears inline. (Held.)"""
    rid = world.draft()
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    )
    world.airlock.add_file("ada", rid, "tables", "f.svg", svg)
    world.airlock.edit_group("ada", rid, "tables", context="c", controls="c")
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/f.svg")
    assert answer.status_code == 200
    assert "<svg" not in answer.text
    assert 'src="data:image/svg+xml;base64,' in answer.text
    assert "script-src" not in answer.headers["content-security-policy"]


def test_reflected_path_text_is_escaped(world: World, client: TestClient) -> None:
    """Attack: a link to a file page whose name segment is markup; the "no such file" page
    echoes the name. It is escaped. (Held.)"""
    rid = world.reach(State.SUBMITTED)
    answer = page(client, "olu", f"requests/{rid}/files/tables/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert answer.status_code == 404
    assert "<script>alert(1)" not in answer.text


# -- redirects -----------------------------------------------------------------------------


def test_back_to_file_cannot_redirect_off_site(world: World, client: TestClient) -> None:
    """Attack: a form with ``back=file`` and group/name crafted as ``//evil.example`` or
    ``/../../hub``; the 303 must stay under the airlock's prefix (segments are quoted).
    (Held.)"""
    rid = world.reach(State.SUBMITTED)
    for name in ("//evil.example/x", "../../../hub/logout", "https://evil.example", "\\evil"):
        answer = post(
            client,
            "olu",
            f"requests/{rid}/comments",
            {"text": "ok", "back": "file", "group": "tables", "name": name},
        )
        assert answer.status_code == 303, answer.text[:300]
        location = answer.headers["location"]
        assert location.startswith(f"{PREFIX}requests/{rid}/files/tables/"), location
        assert "/" not in location[len(f"{PREFIX}requests/{rid}/files/tables/") :], location


# -- bytes to the author before release ----------------------------------------------------


@pytest.mark.parametrize("state", [State.DRAFT, State.SUBMITTED, State.RETURNED, State.REVIEWED])
def test_the_author_gets_no_bytes_before_release(
    world: World, client: TestClient, state: State
) -> None:
    """Attack: the author opens the file page of her own unreleased table (directly, and as
    the page a refused form re-renders with ``back=file``). A rendered preview is content
    leaving to her browser. The service's VIEW_FILE refuses her. (Held.)"""
    rid = world.reach(state)
    world.airlock.files.root  # noqa: B018 -- the world is ready
    answer = page(client, "ada", f"requests/{rid}/files/tables/by-decile.csv")
    assert 400 <= answer.status_code < 500
    assert "120" not in answer.text
    assert "135" not in answer.text
    refused = post(
        client,
        "ada",
        f"requests/{rid}/vote",
        {"back": "file", "group": "tables", "name": "by-decile.csv", "vote": "approve"},
    )
    assert 400 <= refused.status_code < 500, refused.status_code
    assert "120" not in refused.text
    assert "135" not in refused.text


def test_author_cannot_open_a_supporting_file_after_release(
    world: World, client: TestClient
) -> None:
    """Attack: after release, the author opens the supporting file's page (never released).
    Refused. (Held.)"""
    rid = world.reach(State.RELEASED)
    answer = page(client, "ada", f"requests/{rid}/files/tables/notes.txt")
    assert answer.status_code in (403, 404)
    assert "how it was made" not in answer.text


# -- blind review through markup -----------------------------------------------------------


def test_a_checker_sees_no_other_votes_in_markup_while_blind(
    world: World, client: TestClient
) -> None:
    """Attack: olu votes request_changes and submits; pia opens the request and the file
    pages and looks for olu's name or vote anywhere in the markup (hidden inputs, tags,
    decisions). (Held.)"""
    rid = world.reach(State.SUBMITTED)
    world.vote_all("olu", rid, "request_changes")
    world.airlock.review("olu", rid)
    world.airlock.comment("olu", rid, "secret-olu-note", visibility="private")
    for path in (f"requests/{rid}", f"requests/{rid}/files/tables/by-decile.csv", "queue"):
        text = page(client, "pia", path).text
        assert not re.search(r"\bolu\b", text), path
        assert "request changes" not in text.replace("Request changes", ""), path
        assert "secret-olu-note" not in text


# -- headers and audit ---------------------------------------------------------------------


def test_every_page_forbids_framing_and_caching(world: World, client: TestClient) -> None:
    """Attack: frame the file page (clickjack the Approve button) or read file bytes from a
    shared browser cache. Every page and error page carries frame-ancestors 'none' and
    ``no-store``. (Held.)"""
    rid = world.reach(State.SUBMITTED)
    for who, path in (
        ("olu", f"requests/{rid}/files/tables/by-decile.csv"),
        ("olu", f"requests/{rid}"),
        ("olu", "queue"),
        ("tom", f"requests/{rid}"),
        ("ada", f"requests/{rid}/files/tables/by-decile.csv"),
    ):
        answer = page(client, who, path)
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert "no-store" in answer.headers["cache-control"], path
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_opening_a_file_page_is_audited(world: World, client: TestClient) -> None:
    """Attack: read a file's bytes through the page instead of the API, hoping the view goes
    unrecorded. The page reads through ``Airlock.read_file``: ``airlock.file.view`` with the
    file's hash is written. (Held.)"""
    rid = world.reach(State.SUBMITTED)
    assert page(client, "olu", f"requests/{rid}/files/tables/by-decile.csv").status_code == 200
    with world.store.read() as session:
        events = list(
            session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "airlock.file.view", AuditEntry.user == "olu"
                )
            )
        )
    assert events
    assert any(re.search(r"by-decile\.csv", f"{e.details} {e.object} {e.detail}") for e in events)


# -- the API's twin of every page form -----------------------------------------------------


def _hub_browser(world: World, who: str) -> tuple[TestClient, str]:
    from airlock.app import create_app
    from sde.gateway.auth import HubAuthenticator
    from sde.settings import Settings

    class FakeHub:
        cookie_name = "jupyterhub-services-airlock"
        cookie_path = PREFIX
        access_scopes: frozenset[str] = frozenset()

        async def user_for_token(self, token: str, sync: bool = False) -> dict[str, str]:
            return {"name": who, "kind": "user"} if token == f"{who}-token" else {}

    auth = HubAuthenticator(FakeHub())
    settings = Settings.model_validate(
        {
            "airlock_dir": world.airlock.files.root,
            "registry_url": str(world.store.engine.url),
            "SDE_GATEWAY_PREFIX": PREFIX,
        }
    )
    browser = TestClient(
        create_app(settings, auth, store=world.store), raise_server_exceptions=False
    )
    browser.cookies.set(auth.cookie_name, auth.sign(f"{who}-token"))
    return browser, auth.cookie_name


@pytest.mark.parametrize(
    ("who", "state", "action", "after"),
    [
        ("olu", State.REVIEWED, "release", "released"),
        ("ada", State.SUBMITTED, "withdraw", "withdrawn"),
    ],
)
def test_the_json_api_is_a_csrf_bypass_of_the_pages(
    world: World, who: str, state: State, action: str, after: str
) -> None:
    """Attack (held: ``sde.web.shell.api_caller`` demands the Authorization header for any
    change through the API, so the cookie alone is refused with ``auth.header-required``).

    The pages guard release/withdraw/submit/review with a CSRF token, but the
    JSON API twin of each (``POST api/requests/{id}/release`` etc.) takes the very same
    signed hub cookie (``HubAuthenticator`` reads the header *or* the cookie) and needs no
    body, so no token, no JSON content type and no Origin check stand in the way. A plain
    cross-site ``<form method=post action=".../api/requests/7/release">`` (content type
    ``application/x-www-form-urlencoded``, a "simple" request: no CORS preflight) submitted
    in a checker's browser releases the request; in the author's, withdraws it. Only the
    cookie's SameSite=Lax default stands between this and any site; any same-site origin
    (another subdomain, a user's server under the same site) is not stopped even by that.
    (sde/gateway/auth.py ``HubAuthenticator.__call__`` used by airlock/api.py's ``Caller``
    for state-changing routes; airlock/pages.py's token protects only the page routes.)
    """
    rid = world.reach(state)
    browser, _ = _hub_browser(world, who)
    with browser:
        forged = browser.post(
            f"{PREFIX}api/requests/{rid}/{action}",
            content=b"",
            headers={
                "Origin": "https://attacker.example",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert world.airlock.get(who, rid)["state"] == state.value, (
        forged.status_code,
        forged.text[:200],
        after,
    )


# -- what the checker approves without seeing ----------------------------------------------


def _api_link(text: str, rid: int, name: str) -> bool:
    return f"{PREFIX}api/requests/{rid}/groups/tables/files/{name}" in text


def test_a_checker_can_see_all_of_a_long_text_file_before_approving(
    world: World, client: TestClient
) -> None:
    """Attack (smuggling past review): ada pads an output text file with 20,000 harmless
    characters and puts the disclosive part after them. The file page shows only the first
    ``PREVIEW_CHARS`` ("Only the beginning is shown.") and offers the checker no way to see
    the rest -- no link to the file, and the checker has no download action -- yet its vote
    form approves the whole file. No automatic check applies to ``.txt``, so nothing flags
    it either: two checkers approve bytes neither could see, and they are released.
    (airlock/pages.py ``preview``: ``text[:PREVIEW_CHARS]``; airlock/templates/file.html.)
    """
    rid = world.draft()
    body = (
        "All counts were rounded to 5. " * 700
    ) + "\nPATIENT Jane Doe, Mill Lane, aged 97, the only case in her ward\n"
    assert len(body) > 20_000
    world.airlock.add_file("ada", rid, "tables", "method.txt", body.encode())
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/method.txt")
    assert answer.status_code == 200
    assert "Approve this file" in answer.text
    assert "Jane Doe" in answer.text or _api_link(answer.text, rid, "method.txt")


def test_a_checker_can_see_every_row_of_a_table_before_approving(
    world: World, client: TestClient
) -> None:
    """Attack (smuggling past review): a 600-row output table whose free-text column holds a
    name only in row 550. Nothing flags free text in a column of labels, the file page shows
    the first ``PREVIEW_ROWS`` (500) rows, and there is no way from the page to see the
    rest: the checker approves rows they never saw. (airlock/pages.py ``_table``:
    ``frame.head(PREVIEW_ROWS)`` with no link to the rest or to the file.)
    """
    rid = world.draft()
    rows = [f"area {i},{100 + i}" for i in range(600)]
    rows[550] = "Jane Doe of 3 Mill Lane,120"
    world.airlock.add_file(
        "ada", rid, "tables", "areas.csv", ("area,persons\n" + "\n".join(rows) + "\n").encode()
    )
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/areas.csv")
    assert answer.status_code == 200, answer.text[:300]
    assert "Approve this file" in answer.text
    assert "Jane Doe" in answer.text or _api_link(answer.text, rid, "areas.csv")


def test_a_checker_can_see_a_pdf_before_approving(world: World, client: TestClient) -> None:
    """Attack (smuggling past review): pdf is an allowed output type, but the file page
    answers "a pdf file cannot be shown here" and links to nothing; checkers have no
    download action. A checker can only approve or refuse it unseen -- approval by habit
    releases whatever the PDF holds. (airlock/pages.py ``preview``: no pdf branch;
    file.html offers no link to the bytes.)
    """
    rid = world.draft()
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    world.airlock.add_file("ada", rid, "tables", "report.pdf", pdf)
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/report.pdf")
    assert answer.status_code == 200, answer.text[:300]
    assert "Approve this file" in answer.text
    assert _api_link(answer.text, rid, "report.pdf") or "application/pdf" in answer.text


@pytest.mark.parametrize(
    ("who", "state", "action", "fields"),
    [
        (
            "ada",
            State.DRAFT,
            "groups",
            {"group": "tables\x00", "context": "a\x00", "controls": "b"},
        ),
        ("ada", State.DRAFT, "groups", {"group": "t" * 50_000, "context": "a", "controls": "b"}),
        ("ada", State.DRAFT, "files/delete", {"group": "\x00", "name": "../../etc/passwd"}),
        ("ada", State.DRAFT, "comments", {"text": "hi", "visibility": "private", "group": "nope"}),
        ("ada", State.DRAFT, "comments", {"text": "\x00", "visibility": "x" * 10_000}),
        (
            "olu",
            State.SUBMITTED,
            "vote",
            {"group": "tables", "name": "by-decile.csv", "vote": "x", "sha256": "z" * 5000},
        ),
        (
            "olu",
            State.SUBMITTED,
            "vote",
            {"back": "file", "group": "\x00", "name": "\ud800", "vote": "approve"},
        ),
        ("olu", State.SUBMITTED, "return", {"comment": "\x00"}),
        ("olu", State.SUBMITTED, "reject", {}),
    ],
)
def test_odd_field_values_are_refusals_not_500s(
    world: World, client: TestClient, who: str, state: State, action: str, fields: dict[str, str]
) -> None:
    """Attack: NUL bytes, lone surrogates, huge values, unknown enum values, paths in every
    form field the pages pass to the service. Each must come back as a page (4xx), never a
    500. (Held.)"""
    rid = world.reach(state)
    encoded = {
        k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for k, v in fields.items()
    }
    answer = post(client, who, f"requests/{rid}/{action}", encoded)
    assert answer.status_code < 500, answer.text[:300]


def test_an_author_who_is_also_a_checker_gets_no_bytes_or_vote(
    world: World, client: TestClient
) -> None:
    """Attack: ben is a project member *and* an output checker. He authors a request, submits
    it, then opens his own file page and posts a vote on it, hoping his checker role wins
    over his authorship. The author relation wins: no preview, no vote. (Held.)"""
    rid = world.draft(author="ben")
    world.airlock.submit("ben", rid)
    answer = page(client, "ben", f"requests/{rid}/files/tables/by-decile.csv")
    assert 400 <= answer.status_code < 500
    assert "135" not in answer.text
    vote = post(
        client,
        "ben",
        f"requests/{rid}/vote",
        {"group": "tables", "name": "by-decile.csv", "vote": "approve"},
    )
    assert 400 <= vote.status_code < 500
    assert f'href="{PREFIX}requests/{rid}"' not in page(client, "ben", "queue").text


@pytest.mark.parametrize(
    "document",
    [
        # split orient: keys beyond columns/data are dropped from the table
        '{"columns": ["band", "persons"], "data": [["a", 120], ["b", 135]],'
        ' "note": "Jane Doe of 3 Mill Lane is the one case in band c"}',
        # split orient with an index: the row labels are dropped
        '{"columns": ["persons"], "index": ["Jane Doe of 3 Mill Lane", "John Roe"],'
        ' "data": [[120], [135]]}',
        # columns orient (dict of dicts): reset_index(drop=True) drops the row labels
        '{"persons": {"Jane Doe of 3 Mill Lane": 120, "John Roe": 135}}',
    ],
    ids=["split-extra-key", "split-index", "columns-orient"],
)
def test_the_json_table_preview_shows_everything_the_file_holds(
    world: World, client: TestClient, document: str
) -> None:
    """Attack (smuggling past review): an output ``.json`` shaped like a table, carrying
    disclosive text where the table reader throws it away -- an extra key beside
    ``columns``/``data``, a split-orient ``index``, the row labels of a columns-orient
    document. The file page previews the *parsed table* (``checks._tables`` ->
    ``readers.json_table``), never the document, so the checker sees two tidy counts and
    approves; the released bytes carry the name. (airlock/pages.py ``preview``: a JSON
    table shows only the frame; airlock/checks/readers.py ``json_table``/``_json_rows``.)
    """
    rid = world.draft()
    world.airlock.add_file("ada", rid, "tables", "counts.json", document.encode())
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/counts.json")
    assert answer.status_code == 200, answer.text[:300]
    assert "Approve this file" in answer.text
    assert "Jane Doe" in answer.text


def _xlsx_with_hidden_text() -> bytes:
    import io

    from openpyxl import Workbook
    from openpyxl.comments import Comment

    book = Workbook()
    sheet = book.active
    sheet.append(["band", "persons"])
    sheet.append(["a", 120])
    sheet.append(["b", 135])
    sheet["B2"].comment = Comment("Jane Doe of 3 Mill Lane is one of these", "ada")
    book.properties.creator = "Jane Doe of 3 Mill Lane"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_with_a_formula() -> bytes:
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["band", "persons"])
    sheet.append(["a", 120])
    # no cached value: pandas reads the cell as empty, Excel shows the name when opened
    sheet.append(["b", '=IF(TRUE,"Jane Doe of 3 Mill Lane","")'])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _parquet_with_hidden_text() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"band": ["a", "b"], "persons": [120, 135]})
    table = table.replace_schema_metadata({"note": "Jane Doe of 3 Mill Lane is the one in c"})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("book.xlsx", _xlsx_with_hidden_text),
        ("formula.xlsx", _xlsx_with_a_formula),
        ("counts.parquet", _parquet_with_hidden_text),
    ],
)
def test_the_table_preview_shows_text_hidden_beside_the_cells(
    world: World, client: TestClient, name: str, make: Callable[[], bytes]
) -> None:
    """Attack (smuggling past review): the disclosive text rides in the released file
    outside its cells -- an Excel cell comment and the workbook's creator property; an
    Excel formula with no cached value (pandas reads it as an empty cell, Excel shows the
    name); a Parquet file's key-value schema metadata. The file page renders only the cells
    (``checks._tables``), shows no sign that anything else is there and offers no way to
    see it; the checker approves two tidy counts and the bytes leave with the name.
    (airlock/pages.py ``preview``/``_table``.)
    """
    rid = world.draft()
    world.airlock.add_file("ada", rid, "tables", name, make())
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/{name}")
    assert answer.status_code == 200, answer.text[:300]
    assert "Approve this file" in answer.text
    assert "Jane Doe" in answer.text


def _png_with_text_chunk() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00Jane Doe of 3 Mill Lane is the one case in ward 7")
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


_SVG_HIDDEN = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<desc>Jane Doe of 3 Mill Lane is the one case in ward 7</desc>"
    b'<text x="-9999" y="-9999" opacity="0">Jane Doe</text><rect width="10" height="10"/></svg>'
)


@pytest.mark.parametrize(
    ("name", "make"),
    [("fig.png", _png_with_text_chunk), ("fig.svg", lambda: _SVG_HIDDEN)],
)
def test_the_figure_preview_shows_text_the_image_does_not_draw(
    world: World, client: TestClient, name: str, make: Callable[[], bytes]
) -> None:
    """Attack (smuggling past review): a figure carrying text it never draws -- a PNG
    ``tEXt`` chunk; an SVG ``<desc>`` and a transparent, off-canvas ``<text>``. The file
    page shows figures only as ``<img src="data:...">``, so the checker sees a plain
    picture, has no view of the text inside and no link to the file's source, and approves;
    the released bytes carry the name. (airlock/pages.py ``preview``: png/svg -> image only.)
    """
    rid = world.draft()
    world.airlock.add_file("ada", rid, "tables", name, make())
    world.airlock.submit("ada", rid)
    answer = page(client, "olu", f"requests/{rid}/files/tables/{name}")
    assert answer.status_code == 200, answer.text[:300]
    assert "Approve this file" in answer.text
    assert "Jane Doe" in answer.text


def test_the_csrf_token_is_tied_to_the_session_not_only_the_user(world: World) -> None:
    """Attack (low): capture olu's CSRF token once -- from a saved page, a screen share, a
    proxy that logged a form body -- and reuse it later. ``sde.web.shell.api_caller`` says
    the pages' forms carry "a token tied to the session", but ``pages.csrf_token`` is
    ``HMAC(secret, user)``: the same for every session of the user, surviving sign-out and a
    new sign-in, valid until the process restarts, and not bound to the action or request
    either. Two separate sign-ins (two hub tokens, two cookies) get the same token.
    (airlock/pages.py ``csrf_token`` / ``_token``.)
    """
    from airlock.app import create_app
    from sde.gateway.auth import HubAuthenticator
    from sde.settings import Settings

    class FakeHub:
        cookie_name = "jupyterhub-services-airlock"
        cookie_path = PREFIX
        access_scopes: frozenset[str] = frozenset()

        async def user_for_token(self, token: str, sync: bool = False) -> dict[str, str]:
            return {"name": "olu", "kind": "user"} if token.startswith("olu-session") else {}

    rid = world.reach(State.SUBMITTED)
    auth = HubAuthenticator(FakeHub())
    settings = Settings.model_validate(
        {
            "airlock_dir": world.airlock.files.root,
            "registry_url": str(world.store.engine.url),
            "SDE_GATEWAY_PREFIX": PREFIX,
        }
    )
    app = create_app(settings, auth, store=world.store)
    tokens = []
    for session in ("olu-session-monday", "olu-session-friday"):
        with TestClient(app, raise_server_exceptions=False) as browser:
            browser.cookies.set(auth.cookie_name, auth.sign(session))
            shown = browser.get(f"{PREFIX}requests/{rid}")
            found = re.search(r'name="csrf" value="([^"]+)"', shown.text)
            assert found, shown.text[:300]
            tokens.append(found.group(1))
    assert tokens[0] != tokens[1]
