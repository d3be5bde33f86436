"""Red-team tests of the airlock: attacks on the release workflow, on what callers see, on
the integrity of names and bytes, on the automatic identifier block and on the audit trail.

A FAILING test here is a hole that is still open (its docstring says the attack and why it
matters); a passing one is an attack that failed and stays as a regression test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from airlock.app import create_app
from airlock.checks import is_nhs_number
from airlock.workflow import State
from sde.accounts import record_accreditation, remove_member
from sde.audit import AuditLog
from sde.errors import AccessDenied, BackendUnavailable, DisclosureRisk, InvalidInput, SDEError
from sde.gateway.auth import HubAuthenticator
from sde.settings import Settings
from tests.airlock.http import PREFIX, airlock_client, headers
from tests.airlock.world import FIGURE, PROJECT, TABLE, World, make_world

API = f"{PREFIX}api/requests"
#: Valid NHS numbers (modulus 11), the test data of every identifier attack.
NHS = ("9434765919", "9990000018", "4010232137")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World, tmp_path: Path) -> Iterator[TestClient]:
    with airlock_client(world, tmp_path) as c:
        yield c


def _draft_with(world: World, name: str, data: bytes, *, kind: str = "output") -> int:
    """A new draft of ada's holding one file in group ``g``, described and ready to submit."""
    rid = int(world.airlock.create("ada", PROJECT)["id"])
    world.airlock.add_file("ada", rid, "g", name, data, kind=kind)
    world.airlock.edit_group("ada", rid, "g", context="Counts by decile", controls="rounded")
    return rid


def _assert_submission_blocked(world: World, rid: int) -> None:
    with pytest.raises(DisclosureRisk) as blocked:
        world.airlock.submit("ada", rid)
    assert blocked.value.rule == "airlock.identifiers"


def _approve_and_release(world: World, rid: int) -> None:
    """Two independent checkers approve every output file; a third releases."""
    request = world.airlock.get("olu", rid)
    outputs = [
        (g["name"], f["name"])
        for g in request["groups"]
        for f in g["files"]
        if f["kind"] == "output"
    ]
    for checker in ("olu", "pia"):
        for group, name in outputs:
            world.airlock.vote(checker, rid, group, name, "approve")
        world.airlock.review(checker, rid)
    assert world.airlock.release("raj", rid)["state"] == "released"


def _refused(world: World, user: str) -> list[Any]:
    log = AuditLog(world.store.engine)
    return [e for e in log.entries() if e.outcome == "refused" and e.user == user]


# --------------------------------------------------------------------------------------
# (a) data out without two independent approvals
# --------------------------------------------------------------------------------------


def test_the_author_reads_back_unreviewed_bytes_without_download(
    world: World, client: TestClient
) -> None:
    """Attack: put any file (here a table of NHS numbers) in a *draft* and GET it back over
    the API without ``?download=1``; or GET a *rejected* file the same way.

    Why it matters: docs/deploy.md blocks Jupyter's own downloads because "the airlock is
    the boundary", and ``download`` (the released path) is refused until two checkers
    approve. But ``Action.VIEW_FILE`` is allowed to the author in every state
    (``airlock/workflow.py`` PERMISSIONS), so ``GET .../files/{name}`` without the flag
    serves the raw bytes to the author's browser: nothing needs an approval to leave.
    """
    secret = ("nhs_number,n\n" + "".join(f"{v},50\n" for v in NHS)).encode()
    rid = _draft_with(world, "extract.csv", secret)
    read = client.get(f"{API}/{rid}/groups/g/files/extract.csv", headers=headers("ada"))
    assert read.status_code in (403, 404, 409), "the author got unreviewed bytes back"

    rejected = world.reach(State.REJECTED)
    read = client.get(f"{API}/{rejected}/groups/tables/files/by-decile.csv", headers=headers("ada"))
    assert read.status_code in (403, 404, 409), "the author got a rejected file's bytes"


def test_supporting_files_are_never_downloaded_as_released(world: World) -> None:
    """Attack (failed): release a request and download its supporting file, which no checker
    voted on, with ``download=True``. Refused: only output files are released."""
    rid = world.reach(State.RELEASED)
    with pytest.raises(AccessDenied) as refused:
        world.airlock.read_file("ada", rid, "tables", "notes.txt", download=True)
    assert refused.value.rule == "airlock.not-released"


def test_a_project_member_who_is_a_checker_never_approves_or_releases(world: World) -> None:
    """Attack (failed): ben is a member of htn and an output checker; he tries to vote on,
    review and release a request of his own project, via his second role."""
    rid = world.reach(State.SUBMITTED)
    for act in (
        lambda: world.airlock.vote("ben", rid, "tables", "by-decile.csv", "approve"),
        lambda: world.airlock.review("ben", rid),
        lambda: world.airlock.get("ben", rid),
    ):
        with pytest.raises(AccessDenied):
            act()
    reviewed = world.reach(State.REVIEWED)
    with pytest.raises(AccessDenied):
        world.airlock.release("ben", reviewed)


def test_votes_of_an_old_turn_never_count_after_a_return(world: World) -> None:
    """Attack (failed): a checker's approvals of turn 1 carry over after the request is
    returned, the file swapped and resubmitted, so the swapped bytes ride on old votes."""
    rid = world.reach(State.REVIEWED)  # olu and pia approved turn 1
    world.airlock.return_request("olu", rid, "please round")
    world.airlock.add_file("ada", rid, "tables", "by-decile.csv", b"decile,persons\n1,3\n2,4\n")
    again = world.airlock.submit("ada", rid)
    assert again["turn"] == 2
    assert {
        f["decision"] for g in again["groups"] for f in g["files"] if f["kind"] == "output"
    } == {"incomplete"}
    with pytest.raises(SDEError) as missing:
        world.airlock.review("olu", rid)  # no turn-2 votes yet
    assert missing.value.rule == "airlock.votes-missing"
    with pytest.raises(SDEError):
        world.airlock.release("raj", rid)


def test_bytes_swapped_on_disk_after_approval_are_never_served(world: World) -> None:
    """Attack (failed): after two approvals, overwrite the stored blob (someone with write
    access to the store) so the download serves other bytes. The hash check refuses it."""
    rid = world.reach(State.RELEASED)
    sha = hashlib.sha256(TABLE).hexdigest()
    path = world.airlock.files.path(sha)
    path.chmod(0o600)
    path.write_bytes(b"person_id\n1\n")
    with pytest.raises(BackendUnavailable) as corrupt:
        world.airlock.read_file("ada", rid, "tables", "by-decile.csv", download=True)
    assert corrupt.value.rule == "airlock.file-corrupt"


def test_a_cross_site_form_post_with_the_checkers_cookie_releases(
    world: World, tmp_path: Path
) -> None:
    """Attack: CSRF. The services accept the hub's OAuth cookie (API.md), the cookie is set
    without ``SameSite`` (``sde/gateway/routes/oauth.py``), and ``POST .../release``,
    ``.../review``, ``.../submit`` and ``.../withdraw`` take no body, so a page on any other
    site can make a logged-in checker's browser release (or review) a request with a plain
    form post. Nothing checks ``Origin``/``Sec-Fetch-Site`` or a CSRF token.

    Why it matters: the second approval's *act* can be forged; a release is one click on an
    attacker's page away once two checkers voted.
    """
    rid = world.reach(State.REVIEWED)

    class FakeHub:
        cookie_name = "jupyterhub-services-airlock"
        cookie_path = PREFIX
        access_scopes: frozenset[str] = frozenset()

        async def user_for_token(self, token: str, sync: bool = False) -> dict[str, str]:
            return {"name": "olu", "kind": "user"} if token == "olu-token" else {}  # noqa: S105

    auth = HubAuthenticator(FakeHub())
    settings = Settings(
        airlock_dir=world.airlock.files.root,
        registry_url=str(world.store.engine.url),
        SDE_GATEWAY_PREFIX=PREFIX,
    )
    app = create_app(settings, auth, store=world.store)
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser.cookies.set(auth.cookie_name, auth.sign("olu-token"))
        forged = browser.post(
            f"{API}/{rid}/release",
            content=b"",
            headers={
                "Origin": "https://attacker.example",
                "Sec-Fetch-Site": "cross-site",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert forged.status_code in (401, 403), f"a cross-site post released it: {forged.status_code}"
    assert world.airlock.get("olu", rid)["state"] == "reviewed"


# --------------------------------------------------------------------------------------
# (b) seeing what you should not
# --------------------------------------------------------------------------------------


def test_someone_elses_draft_looks_exactly_like_a_missing_request(
    world: World, client: TestClient
) -> None:
    """Attack (failed): probe request ids as tom (no part in htn), and as a checker on a
    never-submitted draft, to learn which ids exist from a different status or body."""
    rid = world.reach(State.DRAFT)
    missing = 99_999
    for who in ("tom", "olu", "ben", "kim", "sam"):
        for suffix in ("", "/groups/tables/files/by-decile.csv"):
            real = client.get(f"{API}/{rid}{suffix}", headers=headers(who))
            fake = client.get(f"{API}/{missing}{suffix}", headers=headers(who))
            assert real.status_code == fake.status_code == 404, who
            assert real.json()["message"].replace(str(rid), "N") == fake.json()["message"].replace(
                str(missing), "N"
            )


def test_the_author_sees_checkers_comments_before_the_turn_ends(world: World) -> None:
    """Attack: as the author, read the request while it is ``reviewed`` (both reviews in,
    nothing decided yet) and see the checkers' public comments.

    Why it matters: docs/airlock.md says the author sees public comments "once the turn ends
    (the request is returned, released or rejected)". ``comment_visible`` in
    ``airlock/rules.py`` uses ``blind()``, which is false as soon as the request leaves
    ``submitted``/``partially_reviewed``, so in ``reviewed`` (and ``approved``) the author
    reads the checkers' deliberation live, including a third checker's while a conflict is
    being settled.
    """
    rid = world.draft()
    world.airlock.submit("ada", rid)
    for checker in ("olu", "pia"):
        world.vote_all(checker, rid)
        world.airlock.comment(checker, rid, f"{checker}: row 3 is close to the threshold")
        world.airlock.review(checker, rid)
    seen = world.airlock.get("ada", rid)
    assert seen["state"] == "reviewed"
    assert [c["author"] for c in seen["comments"] if c["author"] != "ada"] == []


def test_listing_requests_is_not_audited(world: World, client: TestClient) -> None:
    """Attack: as a checker, list every request (author, project, state of each) through
    ``GET api/requests`` and leave no trace.

    Why it matters: API.md says every view is written to the audit log; ``Airlock.list_for``
    (``airlock/requests.py``) reads without writing any event, so who browsed the queue,
    and when, is invisible.
    """
    world.reach(State.SUBMITTED)
    before = len(list(AuditLog(world.store.engine).entries()))
    listed = client.get(API, headers=headers("raj"))
    assert listed.status_code == 200
    assert listed.json()
    after = list(AuditLog(world.store.engine).entries())
    assert len(after) > before, "listing the requests wrote no audit event"


# --------------------------------------------------------------------------------------
# (c) integrity: names, bytes, content types, bodies
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../registry.sqlite", "..\\x.csv", ".hidden.csv", "a/b.csv", "x.csv\n", "x.exe"]
)
def test_traversal_and_odd_file_names_are_refused(world: World, name: str) -> None:
    """Attack (failed): file names that climb out of the store or hide (folders, dots,
    control characters, executable types)."""
    rid = world.reach(State.DRAFT)
    with pytest.raises(InvalidInput):
        world.airlock.add_file("ada", rid, "tables", name, TABLE)


@pytest.mark.parametrize(
    "group",
    [
        "tables\u200b",  # a zero-width space: shown exactly as "tables"
        "t\u0430bles",  # Cyrillic a
        "tables\u202e",  # right-to-left override
        "tab\x1b[8mles",  # a terminal escape (hides text in logs and consoles)
        "tab\nles",  # a newline inside the name
    ],
)
def test_group_names_that_look_like_another_group_are_refused(world: World, group: str) -> None:
    """Attack: a second group whose name renders exactly like the existing ``tables`` (or
    that carries control characters), so a checker reading "tables" twice, or the author's
    context of one group, is misled about which files a context and controls describe.

    Why it matters: ``_check_group_name`` (``airlock/requests.py``) refuses only slashes,
    NUL and outer whitespace; zero-width, bidi, homoglyph and control characters pass.
    """
    rid = world.reach(State.DRAFT)  # holds group "tables"
    with pytest.raises(InvalidInput):
        world.airlock.add_file("ada", rid, group, "other.csv", TABLE)


@pytest.mark.parametrize(
    "name",
    [
        "by-decile\u200b.csv",  # zero-width space
        "by\u2010decile.csv",  # Unicode hyphen
        "by-decile\u0085.csv",  # a C1 control (NEL) that _PLAIN lets through
        "by-\u202edecile.csv",  # right-to-left override: shown reversed
    ],
)
def test_file_names_that_look_like_another_file_are_refused(world: World, name: str) -> None:
    """Attack: in the group holding ``by-decile.csv``, add a second file whose name renders
    the same (or reversed, or with an invisible control), so a checker's vote on "the"
    by-decile.csv lands on the other one.

    Why it matters: ``_PLAIN`` in ``airlock/files.py`` excludes ASCII controls only; C1
    controls, zero-width and bidi characters and confusable hyphens pass.
    """
    rid = world.reach(State.DRAFT)
    with pytest.raises(InvalidInput):
        world.airlock.add_file("ada", rid, "tables", name, TABLE)


def test_files_are_stored_before_the_caller_is_known_to_have_any_right(
    world: World, client: TestClient
) -> None:
    """Attack: as tom (no part in htn), PUT megabytes to someone else's request, to a
    request that does not exist and to a submitted one: every PUT is refused, yet every
    body is written to the airlock's file store first and never removed.

    Why it matters: ``Airlock.add_file`` calls ``self.files.put(data)`` before
    ``self._act`` checks the caller, so any logged-in user fills the store of the
    environment's boundary with unreferenced blobs (disk exhaustion stops every release),
    and bytes that were never part of any request sit in the release store.
    """
    rid = world.reach(State.DRAFT)
    bodies = [f"tom's payload {i}\n".encode() * 1000 for i in range(3)]
    for target, body in zip((rid, 99_999, world.reach(State.SUBMITTED)), bodies, strict=True):
        answer = client.put(
            f"{API}/{target}/groups/g/files/blob.csv", content=body, headers=headers("tom")
        )
        assert answer.status_code == 404
    stored = [world.airlock.files.path(hashlib.sha256(b).hexdigest()).exists() for b in bodies]
    assert stored == [False, False, False], "refused uploads were written to the store"


def test_active_files_are_served_in_a_sandbox(world: World, client: TestClient) -> None:
    """Attack (failed): an SVG or HTML output with a script, opened by a checker from the
    service's origin, acting in the checker's session (e.g. releasing the request)."""
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("../../release")</script></svg>'
    html = b"<html><script>fetch('release',{method:'POST'})</script></html>"
    rid = world.reach(State.DRAFT)
    world.airlock.add_file("ada", rid, "tables", "chart.svg", svg)
    world.airlock.add_file("ada", rid, "tables", "page.HTML", html)
    world.airlock.add_file("ada", rid, "tables", "fake.csv", html)
    world.airlock.submit("ada", rid)
    for name in ("chart.svg", "page.HTML"):
        served = client.get(f"{API}/{rid}/groups/tables/files/{name}", headers=headers("olu"))
        assert served.status_code == 200
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in served.headers["content-security-policy"]
    fake = client.get(f"{API}/{rid}/groups/tables/files/fake.csv", headers=headers("olu"))
    assert fake.headers["content-type"].startswith("text/csv")
    assert fake.headers["x-content-type-options"] == "nosniff"


def test_odd_bodies_never_give_a_500(world: World, client: TestClient) -> None:
    """Attack (failed): malformed JSON, lone surrogates, wrong types, huge ids, odd bytes in
    path segments: each must be a 4xx in the common error shape, never a 500."""
    rid = world.reach(State.SUBMITTED)
    olu = {**headers("olu"), "content-type": "application/json"}
    ada = {**headers("ada"), "content-type": "application/json"}
    probes = [
        client.post(f"{API}/{rid}/comments", content=b'{"text": "a \\ud800 b"}', headers=olu),
        client.post(f"{API}/{rid}/comments", content=b'{"text": ', headers=olu),
        client.post(f"{API}/{rid}/comments", content=b"[1, 2]", headers=olu),
        client.post(f"{API}/{rid}/comments", json={"text": "x", "group": "nope"}, headers=olu),
        client.patch(f"{API}/{rid}/groups/tables", content=b"null", headers=ada),
        client.get(f"{API}/99999999999999999999", headers=headers("olu")),
        client.get(f"{API}/{rid}/groups/t%ED%A0%80/files/x%00.csv", headers=headers("olu")),
        client.post(
            f"{API}/{rid}/groups/tables/files/notes.txt/vote", json={"vote": "approve"}, headers=olu
        ),
        client.put(f"{API}/{rid}/groups/%20/files/x.csv", content=TABLE, headers=headers("ada")),
    ]
    for answer in probes:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.text)
        assert set(answer.json()) >= {"error", "rule", "message"}


# --------------------------------------------------------------------------------------
# (d) the automatic identifier block
# --------------------------------------------------------------------------------------


def test_the_nhs_numbers_used_here_are_valid() -> None:
    assert all(is_nhs_number(v) for v in NHS)


@pytest.mark.parametrize("name", ["extract.csv", "extract.txt"])
def test_one_fullwidth_digit_cell_switches_every_identifier_check_off(
    world: World, name: str
) -> None:
    """Attack: add one cell (or line) of ten *fullwidth* digits (``１２３４５６７８９０``) to a
    table that plainly holds ``person_id`` and ``nhs_number`` columns of valid NHS numbers.

    Why it matters: ``re``'s ``\\d`` matches Unicode digits, so ``NHS_TOKEN``/``_LOOSE`` in
    ``airlock/checks.py`` pick the cell up, and ``_valid_strings`` then calls
    ``.encode("ascii")``: ``UnicodeEncodeError``. ``check_file`` catches *every* exception
    and answers ``review`` with no blocking reasons, so the whole file - real identifiers
    included - is submitted. One poison cell disables the identifier block for the file.
    """
    poison = "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff10"
    if name.endswith(".csv"):
        rows = "".join(f"{i},{v},50,ok\n" for i, v in enumerate(NHS, 1))
        text = "person_id,nhs_number,n,note\n" + rows + f"9,1,60,{poison}\n"
    else:
        text = "".join(f"patient {v}\n" for v in NHS) + f"ref {poison}\n"
    rid = _draft_with(world, name, text.encode())
    _assert_submission_blocked(world, rid)


def test_person_id_kept_as_the_parquet_index_is_not_blocked(world: World) -> None:
    """Attack: ``df.set_index("person_id").to_parquet(...)`` - the everyday way a pandas
    user writes a table - with a second index level of NHS numbers.

    Why it matters: ``pd.read_parquet`` restores the index from the pandas metadata and
    ``_examine`` (``airlock/checks.py``) looks at ``frame.columns`` only, so the identifiers
    travel in the index, the checks say ``pass`` and (with ``single_review``) one checker
    suffices.
    """
    frame = pd.DataFrame(
        {"person_id": [101, 102, 103], "nhs_number": list(NHS), "n": [50, 60, 70]}
    ).set_index(["person_id", "nhs_number"])
    out = io.BytesIO()
    frame.to_parquet(out)
    rid = _draft_with(world, "cohort.parquet", out.getvalue())
    _assert_submission_blocked(world, rid)


@pytest.mark.parametrize(
    "column", ["personid", "patientid", "person_id_2", "person_ids", "patient_id_hashed"]
)
def test_person_id_renamed_is_not_blocked(world: World, column: str) -> None:
    """Attack: rename ``person_id`` slightly (no underscore, a suffix, a plural).

    Why it matters: ``IDENTIFIER_NAME`` (``airlock/checks.py``) is anchored at the end
    (``...person_id$``) and needs the underscore, so ``person_id_2`` or ``personid`` are
    read as counts or labels and the table is submitted.
    """
    data = f"{column},n\n101,50\n102,60\n103,70\n".encode()
    rid = _draft_with(world, "cohort.csv", data)
    _assert_submission_blocked(world, rid)


def _title_xlsx() -> bytes:
    out = io.BytesIO()
    with pd.ExcelWriter(out) as book:
        frame = pd.DataFrame({"person_id": [101, 102], "n": [50, 60]})
        frame.to_excel(book, sheet_name="cohort", index=False, startrow=2)
        book.sheets["cohort"]["A1"] = "Cohort extract, March 2025"
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cohort.csv", b"Cohort extract, March 2025\nperson_id,n\n101,50\n102,60\n"),
        ("cohort.xlsx", _title_xlsx()),
    ],
)
def test_a_title_row_above_the_header_hides_identifier_columns(
    world: World, name: str, data: bytes
) -> None:
    """Attack: put a title line above the header, as most exported tables have.

    Why it matters: the CSV no longer parses (``_unreadable``: status ``review``, and only
    NHS-number *text* is scanned, never column names), and the xlsx sheet's header becomes
    ``Unnamed: n`` with ``person_id`` as a data cell; either way the ``person_id`` column is
    not recognised and the file is submitted.
    """
    rid = _draft_with(world, name, data)
    _assert_submission_blocked(world, rid)


@pytest.mark.parametrize(
    "doc",
    [
        {"rows": [{"person_id": 101, "n": 50}, {"person_id": 102, "n": 60}]},
        [{"person_id": 101, "n": 50, "tags": ["a"]}, {"person_id": 102, "n": 60, "tags": []}],
    ],
)
def test_identifier_columns_in_nested_json_are_not_blocked(world: World, doc: Any) -> None:
    """Attack: wrap the records in ``{"rows": [...]}`` or give one field a list value.

    Why it matters: ``_json_table`` recognises only flat records/split/columns orients;
    anything else is "text" and only scanned for NHS-number shapes, so ``person_id``
    records leave in any JSON that is not exactly a flat table.
    """
    rid = _draft_with(world, "cohort.json", json.dumps(doc).encode())
    _assert_submission_blocked(world, rid)


def test_nhs_numbers_diluted_with_invalid_decoys_are_not_blocked(world: World) -> None:
    """Attack: mix the real NHS numbers with more ten-digit numbers whose check digit is
    wrong; the recipient tells them apart by the modulus-11 check.

    Why it matters: ``_nhs_column`` blocks a column only when at least half of its
    ten-digit values are valid, and ``_nhs_integers`` likewise; three real numbers among
    four decoys pass as ``pass``.
    """
    decoys = ["9434765910", "9990000011", "4010232130", "1234567890"]
    assert not any(is_nhs_number(d) for d in decoys)
    data = ("ref,n\n" + "".join(f"{v},50\n" for v in (*NHS, *decoys))).encode()
    rid = _draft_with(world, "refs.csv", data)
    _assert_submission_blocked(world, rid)


@pytest.mark.parametrize(
    ("label", "shape"),
    [
        ("no-break spaces", lambda v: f"{v[:3]}\u00a0{v[3:6]}\u00a0{v[6:]}"),
        ("mixed separators", lambda v: f"{v[:3]} {v[3:6]}-{v[6:]}"),
        ("dots", lambda v: f"{v[:3]}.{v[3:6]}.{v[6:]}"),
        ("a letter prefix", lambda v: f"NHS{v}"),
        ("an underscore prefix", lambda v: f"id_{v}"),
        ("a minus sign", lambda v: f"-{v}"),
    ],
)
def test_nhs_numbers_in_other_shapes_are_not_blocked(world: World, label: str, shape: Any) -> None:
    """Attack: write the NHS numbers in a shape the regexes do not expect (a no-break space
    from Word or Excel, ``943 476-5919``, dots, a prefix glued on, a sign).

    Why it matters: ``_SHAPE`` accepts only one repeated separator out of space or hyphen,
    and ``NHS_TOKEN`` refuses a number preceded by a word character, so every shape here is
    submitted with status ``pass``.
    """
    data = ("ref,n\n" + "".join(f"{shape(v)},50\n" for v in NHS)).encode()
    rid = _draft_with(world, "refs.csv", data)
    _assert_submission_blocked(world, rid)


def _png_with_text(text: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + text)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("name", ["figure.png", "report.pdf"])
def test_identifiers_inside_a_figure_or_pdf_are_released(world: World, name: str) -> None:
    """Attack: put the NHS numbers in a PNG ``tEXt`` chunk (invisible in any image viewer)
    or in a PDF's text, have two checkers approve the harmless-looking figure, download it.

    Why it matters: ``check_file`` gives png and pdf status ``none`` without looking at
    their bytes (``TEXT_TYPES`` omits them), so the identifier block never applies and the
    numbers leave through a fully approved release.
    """
    listing = " ".join(NHS).encode()
    if name.endswith(".png"):
        data = _png_with_text(b"NHS numbers: " + listing)
    else:
        data = b"%PDF-1.4\n1 0 obj <<>> stream\nBT (" + listing + b") Tj ET\nendstream\n%%EOF\n"
    rid = _draft_with(world, name, data)
    try:
        world.airlock.submit("ada", rid)
    except DisclosureRisk:
        return  # blocked: the hole is closed
    _approve_and_release(world, rid)
    _, released = world.airlock.read_file("ada", rid, "g", name, download=True)
    assert NHS[0].encode() not in released, "NHS numbers left in an approved release"


# --------------------------------------------------------------------------------------
# (e) audit gaps; people who should no longer act
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [("registry.sqlite", "airlock.file-type"), ("../notes.csv", "airlock.file-name")],
)
def test_refused_uploads_are_not_audited(world: World, name: str, rule: str) -> None:
    """Attack: probe what the airlock lets out (a database, a path out of the folder)
    and leave no trace when it is refused.

    Why it matters: docs/airlock.md: "A refusal ... is written on its own with outcome:
    refused and its rule". ``Airlock.add_file`` runs ``check_name``/``check_size``/
    ``_check_group_name`` (and ``edit_group``, ``vote``, ``comment`` their input checks)
    *before* ``_act``/``_refusals_audited``, so these refusals never reach the log.
    """
    rid = world.reach(State.DRAFT)
    with pytest.raises(InvalidInput) as refused:
        world.airlock.add_file("ada", rid, "tables", name, TABLE)
    assert refused.value.rule == rule
    assert [e.rule for e in _refused(world, "ada")] == [rule]


def test_a_researcher_whose_accreditation_lapsed_still_uses_the_airlock(world: World) -> None:
    """Attack: keep using the airlock after the safe-researcher accreditation has lapsed
    (or without ever signing the data access agreement: the test world never records one
    and ada uses the airlock throughout).

    Why it matters: the gateway refuses such a user on every query
    (``check_may_use_data``: ``access.not-accredited``/``access.no-daa``), but
    ``Airlock._act`` only checks the project's status, never the user's, so a lapsed
    researcher still starts requests, submits and downloads released files with an API
    token that is still valid.
    """
    rid = world.reach(State.RELEASED)
    yesterday = dt.date.today() - dt.timedelta(days=1)
    record_accreditation(world.store, "tests", "ada", yesterday)
    with pytest.raises(AccessDenied) as download:
        world.airlock.read_file("ada", rid, "tables", "by-decile.csv", download=True)
    assert download.value.rule == "access.not-accredited"
    with pytest.raises(AccessDenied):
        world.airlock.create("ada", PROJECT)


def test_figure_is_not_a_table(world: World) -> None:
    """Sanity for the attacks above: a plain figure is status ``none`` and not blocked."""
    rid = _draft_with(world, "f.png", FIGURE)
    world.airlock.add_file("ada", rid, "g", "t.csv", TABLE)
    done = world.airlock.submit("ada", rid)
    assert {f["name"]: f["checks"]["status"] for f in done["groups"][0]["files"]} == {
        "f.png": "none",
        "t.csv": "pass",
    }


def test_a_supporting_file_turned_output_during_the_checks_skips_them(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack (a race): submit with an identifier table as a *supporting* file (never
    checked), and while the checks run - they run before the submission's transaction
    and take as long as the files are large - PUT the same bytes again as ``kind=output``.

    Why it matters: ``Airlock.submit`` matches the check results to the files by
    ``(file.id, file.sha256)`` only. Re-adding identical bytes keeps the row's id and hash
    and changes only ``kind``, so the output file is given the supporting file's ``none``
    verdict: the identifier block never sees it and the table goes to review (and, once
    approved, out) as an output. The kind must be part of what the transaction compares.
    """
    people = b"person_id,nhs_number,n\n101,9434765919,50\n102,9990000018,60\n"
    rid = _draft_with(world, "figure.png", FIGURE)
    world.airlock.add_file("ada", rid, "g", "people.csv", people, kind="supporting")
    checks = world.airlock._check_files

    def racing(user: str, request_id: int) -> Any:
        results = checks(user, request_id)
        world.airlock.add_file("ada", rid, "g", "people.csv", people, kind="output")
        return results

    monkeypatch.setattr(world.airlock, "_check_files", racing)
    try:
        submitted = world.airlock.submit("ada", rid)
    except (DisclosureRisk, SDEError):
        return  # refused (blocked, or "the files changed"): the race is closed
    kinds = {f["name"]: (f["kind"], f["checks"]["status"]) for f in submitted["groups"][0]["files"]}
    assert kinds["people.csv"] != ("output", "none"), "an unchecked identifier table is an output"


def test_a_removed_member_keeps_submitting_to_their_open_request(world: World) -> None:
    """Attack: be removed from the project (left it, or removed for a breach) while holding
    a draft, then add files prepared earlier and submit them; or download later.

    Why it matters: ``Airlock.create`` checks membership, but ``_act`` decides everything
    else by ``relation_of``, where the author is the author by name alone; nothing asks
    whether they are still a member, so someone the project has removed keeps using its
    release route.
    """
    rid = world.reach(State.DRAFT)
    remove_member(world.store, "tests", PROJECT, "ada")
    with pytest.raises(AccessDenied):
        world.airlock.add_file("ada", rid, "tables", "more.csv", TABLE)
    with pytest.raises(AccessDenied):
        world.airlock.submit("ada", rid)


def test_a_small_parquet_file_expands_without_bound_in_the_checks(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a decompression bomb. A parquet column of one repeated value compresses
    about 1,500 to 1: a file of a few tens of KB is millions of rows once read; at the
    default 50 MB limit one upload is tens of GB in the airlock's memory.

    Why it matters: ``_read_parquet`` (``airlock/checks.py``) calls ``pd.read_parquet``
    with no bound on rows or decoded size (xlsx has the same problem through openpyxl), and
    the checks run inside the ``submit`` request, and again for every earlier release of
    the project (differencing). One researcher's submission can take the boundary service
    down for everyone. The test reads 2 million rows from ~10 KB and demands the checks
    refuse anything expanding more than 100-fold.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 2_000_000
    table = pa.table({"decile": pa.array([1], pa.int64()).take(pa.array([0] * rows))})
    table = table.append_column("n", pa.array([50], pa.int64()).take(pa.array([0] * rows)))
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    data = out.getvalue()
    assert len(data) < 100_000
    seen: list[int] = []
    from airlock import checks

    examine = checks._examine

    def measuring(uid: str, frame: pd.DataFrame, rules: Any) -> Any:
        seen.append(int(frame.memory_usage(deep=True).sum()))
        return examine(uid, frame, rules)

    monkeypatch.setattr(checks, "_examine", measuring)
    rid = _draft_with(world, "bomb.parquet", data)
    try:
        world.airlock.submit("ada", rid)
    except DisclosureRisk as refused:  # refused undecoded, and blocked (it fails closed)
        blocked = str(refused)
    else:
        blocked = "bomb.parquet"
    assert "bomb.parquet" in blocked
    assert max(seen, default=0) <= 100 * len(data), (
        f"{len(data):,} bytes were expanded to {max(seen):,} bytes in the checks"
    )


def test_a_json_body_far_above_every_field_limit_is_read_whole(
    world: World, client: TestClient
) -> None:
    """Attack: send a 12 MB JSON body to ``PATCH .../groups/{g}`` (fields are capped at
    10,000 characters): the service reads and parses all of it before refusing.

    Why it matters: only file uploads (``_body``) are cut off as they stream; every JSON
    route hands the whole body to FastAPI's parser, so bodies of any size are held in
    memory (several copies while decoding). API.md: too large is 413; here it is a 422
    after the damage is done.
    """
    rid = world.reach(State.DRAFT)
    body = b'{"context": "' + b"x" * 12_000_000 + b'"}'
    answer = client.patch(
        f"{API}/{rid}/groups/tables",
        content=body,
        headers={**headers("ada"), "content-type": "application/json"},
    )
    assert answer.status_code == 413, answer.status_code


def test_identifiers_in_a_supporting_file_reach_the_checkers(world: World) -> None:
    """Attack: attach the person-level extract as a *supporting* file ("how it was made")
    beside a harmless output table.

    Why it matters: ``Airlock._check_files`` gives every supporting file ``none`` without
    reading it, so the identifier block never applies; the checkers - people outside the
    project, with no approval to see its records - are served NHS numbers and person ids
    (``GET .../files/{name}``), and the file sits in the release store for good.
    """
    people = ("person_id,nhs_number\n" + "".join(f"{i},{v}\n" for i, v in enumerate(NHS))).encode()
    rid = _draft_with(world, "by-decile.csv", TABLE)
    world.airlock.add_file("ada", rid, "g", "extract.csv", people, kind="supporting")
    _assert_submission_blocked(world, rid)


def test_returning_reveals_the_other_checkers_unsubmitted_votes(world: World) -> None:
    """Attack: as the first checker to review, watch the second checker's votes before
    they submit: return the request (any checker may, while it is under review) and read
    it again.

    Why it matters: ``vote_visible`` (``airlock/rules.py``) hides others' votes only while
    ``blind()``, i.e. while the request is ``submitted``/``partially_reviewed``; once it
    is returned every vote of the turn is shown, including votes of a review that was never
    submitted (and never counted). Blind review should hide uncounted votes for good.
    """
    rid = world.draft()
    world.airlock.submit("ada", rid)
    world.vote_all("olu", rid)
    world.airlock.review("olu", rid)
    world.vote_all("pia", rid, "request_changes")  # pia has not submitted her review
    world.airlock.return_request("olu", rid, "returning early")
    seen = {(v["reviewer"], v["vote"]) for v in world.airlock.get("olu", rid)["votes"]}
    assert ("pia", "request_changes") not in seen, "an unsubmitted vote became visible"
