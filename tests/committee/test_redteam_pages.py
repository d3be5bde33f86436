"""Red team of the committee's pages (an outsider's attack on access_committee/pages,
admin_pages and the cohort-size preview).

Holes still open are ``xfail(strict=True)`` with ``reason="open: ..."``; each docstring
names the hole and shows it. Attacks that held are ordinary passing tests.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from access_committee.pages.base import csrf_token
from access_committee.workflow import State
from sde.accounts import change_status, get_project, get_user, set_roles
from sde.errors import SDEError
from sde.registry.audit_log import AuditEntry
from tests.committee.http import PREFIX, committee_client, csrf, headers, page, post
from tests.committee.test_cohort_size import COPD, node_file
from tests.committee.world import CUSTODIANS, World, fields, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with committee_client(world) as c:
        yield c


@pytest.fixture
def pg_world(pg_server: Any, tmp_path: Path) -> World:
    """The committee's people on a PostgreSQL registry (the registry the SDE supports
    besides SQLite, and the one that enforces column sizes and refuses NUL)."""
    dsn = psycopg.conninfo.conninfo_to_dict(pg_server.create_database())
    url = f"postgresql+psycopg://{dsn['user']}@{dsn['host']}:{dsn['port']}/{dsn['dbname']}"
    return make_world(tmp_path, url)


FormData = dict[str, str | list[str]]


def _audit(world: World) -> list[tuple[str, str, str | None, str, str | None]]:
    with world.store.read() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        return [(r.user, r.action, r.object, r.outcome, r.rule) for r in rows]


def _audit_count(world: World) -> int:
    with world.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _not_500(answer: httpx.Response) -> None:
    assert answer.status_code < 500, answer.text[:300]


def _sizes(text: str) -> list[str]:
    table = text[text.index('id="cohort-sizes"') :]
    table = table[: table.index("</table>")]
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in table.split("<tr>")[2:]]


def _decide_all_nodes(c: TestClient, app_id: int) -> None:
    for node, custodian in CUSTODIANS.items():
        done = post(c, custodian, f"applications/{app_id}/nodes/{node}", {f"agree-{node}": "yes"})
        assert done.status_code == 303, done.text[:300]


# == holes (open) ==========================================================================


def test_a_unicode_digit_in_the_cohort_is_a_refusal_not_a_500(client: TestClient) -> None:
    """HELD: ``Typed._cohort`` and ``vocabulary.trees`` test ``str.isdigit()`` and then call
    ``int()``; ``'²'.isdigit()`` is True but ``int('²')`` raises ValueError, which is not an
    SDEError, so saving the form (or searching from it) answers 500 ``gateway.internal``
    instead of the form again with 'not a concept id'."""
    for action in ("save", "search", "submit"):
        answer = post(
            client,
            "ada",
            "applications",
            {"project": "sup-digit", "cohort": ["²"], "action": action},
        )
        _not_500(answer)
        assert answer.status_code == 400
        assert "not a concept id" in html.unescape(answer.text)


def test_a_non_admin_posting_an_admin_user_form_is_audited(
    world: World, client: TestClient
) -> None:
    """HOLE (audit gap): a researcher who posts the administrators' forms directly, trying
    to grant himself ``admin``, accredit himself or unlock an account, is refused (404, good)
    but nothing is written to the audit trail: ``_user_action`` checks ``_admin`` in
    ``_user_page_exists`` *before* it opens ``refusals_audited``. The project status form
    audits the same attempt (``project.suspend`` refused ``committee.admin-only``), and the
    API's refusals are audited, so a privilege-escalation attempt through the pages is the
    one that leaves no trace."""
    attempts: list[tuple[str, FormData, str]] = [
        ("admin/users/tom/roles", {"role": "admin", "op": "grant"}, "user.roles"),
        ("admin/users/tom/accreditation", {"until": "2099-01-01"}, "user.accredit"),
        ("admin/users/sam/unlock", {}, "user.unlock"),
    ]
    for path, form, event in attempts:
        before = _audit_count(world)
        answer = post(client, "tom", path, form)
        assert answer.status_code == 404
        assert "admin" not in get_user(world.store, "tom").roles
        after = _audit(world)[before:]
        assert any(
            user == "tom" and action == event and outcome == "refused"
            for user, action, _, outcome, _ in after
        ), f"{path}: no refusal audited ({after})"


def test_the_caller_cannot_name_the_audit_event(world: World, client: TestClient) -> None:
    """HOLE (audit integrity): ``POST admin/projects/{slug}/status`` opens
    ``refusals_audited(page.user, f"project.{action}", ...)`` with ``action`` straight from
    the form, before checking it. Any signed-in user (no role needed) writes audit entries
    with event names of their choosing: here ``project.approve`` and
    ``project.user.roles``, events that never exist, attributed to a refusal by the
    registry. (On a PostgreSQL registry a name over 40 characters makes it a 500 and the
    refusal is lost: see the PostgreSQL test below.)"""
    for forged in ("approve", "user.roles"):
        post(client, "tom", "admin/projects/anything/status", {"action": forged, "reason": "x"})
    actions = {action for _, action, _, _, _ in _audit(world)}
    assert "project.approve" not in actions
    assert "project.user.roles" not in actions


def test_previews_cannot_be_differenced_to_show_a_group_under_10(
    world: World, tmp_path: Path
) -> None:
    """HELD (disclosure by differencing): the preview rounds each count to the nearest 10,
    but the count is of whatever cohort and period the application asks for. Two
    applications (or one deferred and resubmitted) whose periods differ by one day are shown
    to a committee member as 'about 20' and 'about 30' persons with a cohort condition in
    the period: the member learns that at least one person (here exactly one, person 99) had
    a COPD record on 2020-06-15 at every node: a group under 10. The figures computed are
    not recorded in the audit trail either, so the probing cannot be seen afterwards."""
    data = tmp_path / "nodes"
    data.mkdir()
    rows = [(p, COPD, "2020-01-01") for p in range(24)] + [(99, COPD, "2020-06-15")]
    for node in CUSTODIANS:
        node_file(data / f"{node}.duckdb", rows, set())
    before = world.submitted(period={"start": "2020-01-01", "end": "2020-06-14"})
    after = world.submitted(period={"start": "2020-01-01", "end": "2020-06-15"})
    with committee_client(world, data) as c:
        one = _sizes(page(c, "lee", f"applications/{before}").text)
        two = _sizes(page(c, "lee", f"applications/{after}").text)
    # 25 persons; the in-period count covers the period's whole years (2020): 25 too
    assert one[0] == "lth about 30 about 30"
    # The safe outcome: the person added by one day is not visible in the figures.
    assert one == two, f"{one} vs {two}: one person's record date is disclosed"


def test_the_period_shown_is_the_period_that_compiles(world: World, client: TestClient) -> None:
    """HELD (the application says one thing, the scope another): ``period_start``
    ``2020-W01-1`` and ``period_end`` ``20241231`` are accepted (``date.fromisoformat``
    takes ISO week and basic formats) and stored as typed. The applicant's page and the
    'The application' column the committee reads say ``2020-W01-1 to 20241231`` while the
    compiled scope starts on 2019-12-30; a browser's date input on the edit form shows
    neither. What is enforced should be what the application shows (normalise to
    YYYY-MM-DD on save, or refuse other forms)."""
    answer = post(
        client,
        "ada",
        "applications",
        {"project": "week-dates", "period_start": "2020-W01-1", "period_end": "20241231"},
    )
    if answer.status_code == 400:  # refusing other date forms is a fix too
        return
    assert answer.status_code == 303
    app_id = int(answer.headers["location"].split("/")[-2])
    shown = page(client, "ada", f"applications/{app_id}").text
    assert "2020-W01-1" not in shown
    assert "2019-12-30" in shown


def test_a_malformed_id_in_a_page_path_answers_a_page(client: TestClient) -> None:
    """HELD (consistency, low): the admin pages answer any user name or slug with a 404
    page, but the applicants' and reviewers' pages validate their path with FastAPI, so
    ``applications/abc``, ``applications/0``, ``projects/UPPER`` and a node name with
    capitals answer the framework's JSON 422 to a browser (no CSP, no page)."""
    for path in (
        "applications/abc",
        "applications/0",
        "applications/99999999999",
        "projects/UPPER",
    ):
        answer = page(client, "ada", path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html")
    forged = post(client, "nia", "applications/1/nodes/LTH", {"agree-LTH": "yes"})
    assert forged.headers["content-type"].startswith("text/html")


def test_a_status_reason_is_held_to_the_apis_limit(world: World, client: TestClient) -> None:
    """HOLE (low): ``POST api/projects/{p}/suspend`` refuses a reason over 5,000 characters;
    the admin page's status form takes one of 200,000 (up to the form's 256 kB) and writes
    it to the project and the audit trail."""
    app_id = world.submitted()
    world.approve(app_id)
    slug = world.committee.get("ada", app_id)["project"]
    answer = post(
        client,
        "sam",
        f"admin/projects/{slug}/status",
        {"action": "suspend", "reason": "r" * 200_000, "confirm": "yes"},
    )
    assert get_project(world.store, slug).status == "active", "a 200,000-character reason taken"
    assert answer.status_code == 400


def test_a_withdrawn_draft_stays_private(world: World, client: TestClient) -> None:
    """HOLE (a private draft disclosed): a draft is the applicant's own (404 to the
    committee, custodians and administrators). An applicant who abandons it with 'Withdraw'
    moves it to ``withdrawn``, and ``PERMISSIONS[VIEW]`` lets committee members, the
    custodians of every node it names and administrators see any state but ``draft``: the
    never-submitted text appears on their pages (with the cohort-size preview run over the
    nodes' data for it), in the committee's ``GET api/applications`` and in a custodian's
    node list."""
    draft = world.committee.create(
        "ada", fields("secret-draft", purpose="private notes: compare with Dr X's cohort")
    )["id"]
    for who in ("lee", "nia", "sam"):
        assert page(client, who, f"applications/{draft}").status_code == 404
    assert post(client, "ada", f"applications/{draft}/withdraw").status_code == 303
    for who in ("lee", "nia", "sam"):
        answer = page(client, who, f"applications/{draft}")
        assert answer.status_code == 404, f"{who} sees the withdrawn draft"
        assert "private notes" not in answer.text
    assert draft not in [a["id"] for a in world.committee.list_for("lee")]
    assert "secret-draft" not in page(client, "nia", "nodes").text


class _FormReader(HTMLParser):
    """The fields a browser would post from the form with ``id`` (text and hidden inputs,
    ticked boxes and radios, textareas; disabled inputs left out)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside = form_id, False
        self.pairs: list[tuple[str, str]] = []
        self.textarea: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name and "disabled" not in a:
            kind = a.get("type") or "text"
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.pairs.append((name, a.get("value") or "on"))
            elif kind not in ("submit", "button"):
                self.pairs.append((name, a.get("value") or ""))
        if tag == "textarea" and name:
            self.textarea = [name, ""]

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self.textarea is not None and self.inside:
            self.pairs.append((self.textarea[0], self.textarea[1]))
            self.textarea = None
        if tag == "form":
            self.inside = False


def test_saving_an_amendment_unchanged_keeps_the_approved_output_checking(
    world: World, client: TestClient
) -> None:
    """HELD (scope loosened by nobody): a project approved with output-checking settings the
    form has no field for (``survival_threshold`` 50, ``protection_width`` 5: stricter than
    the SDE's defaults; set through the API) is amended by its PI on the pages. The draft
    amendment carries them, but the edit form cannot, so pressing 'Save as a draft' without
    changing anything drops them: the amendment now asks for the default survival
    threshold (10) and no protection, the committee is shown no difference from the
    approved scope, and an approval makes the looser scope version 2."""
    strict = {"threshold": 20, "survival_threshold": 50, "protection_width": 5.0}
    app_id = world.submitted(sdc=strict)
    world.approve(app_id)
    slug = world.committee.get("ada", app_id)["project"]
    made = post(client, "ada", f"projects/{slug}/amendments")
    amendment = int(made.headers["location"].split("/")[-2])
    assert world.committee.get("ada", amendment)["sdc"] == strict
    reader = _FormReader("application-form")
    reader.feed(page(client, "ada", f"applications/{amendment}/edit").text)
    typed = [(k, v) for k, v in reader.pairs if k != "csrf"] + [("action", "save")]
    assert post(client, "ada", f"applications/{amendment}", typed).status_code == 303
    assert world.committee.get("ada", amendment)["sdc"] == strict


def test_a_custodian_on_the_committee_still_answers_for_their_node(
    world: World, client: TestClient
) -> None:
    """HOLE (availability, low): ``_relation`` tries ``committee`` before ``custodian``, so
    a node's custodian who is also a committee member is only ever a committee member: the
    page shows no form for the node and a post is refused (``committee.not-permitted``).
    When they are the node's only custodian, every application asking for that node waits
    for an answer that can never be given, however the committee votes."""
    set_roles(world.store, "tests", "nia", {"custodian", "committee"})
    app_id = world.submitted()
    shown = page(client, "nia", f"applications/{app_id}").text
    assert f"applications/{app_id}/nodes/lth" in shown
    answer = post(client, "nia", f"applications/{app_id}/nodes/lth", {"agree-lth": "yes"})
    assert answer.status_code == 303


# -- on a PostgreSQL registry -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("title", ["T" * 400, "nul\x00title"], ids=["400-chars", "nul"])
def test_an_approvable_title_does_not_make_the_deciding_vote_500(
    pg_world: World, title: str
) -> None:
    """HELD (was an availability hole): a title was checked only against ``MAX_TEXT``
    (20,000 characters, any characters), but approval copies it into ``projects.title``
    (``VARCHAR(300)``, and PostgreSQL text refuses NUL): the deciding vote was a 500 and the
    application could never be approved. Now the title is held to the registry column's
    length and control characters are refused when the application is saved, naming the
    field, so such a title never reaches a vote (an application stored before the rule is
    deferred with the reason at its deciding vote: tests/committee/test_hardening.py)."""
    with pytest.raises(SDEError) as refused:
        pg_world.submitted(title=title)
    problems = refused.value.details.get("problems") or [
        {"field": refused.value.details.get("field")}
    ]
    assert any(p.get("field") == "title" for p in problems) or "title" in refused.value.message


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("who", "path", "form"),
    [
        ("kim", "conflicts", {"conflict": "yes", "note": "my\x00brother"}),
        ("oli", "nodes/elht", {"agree-elht": "no", "reason-elht": "no\x00capacity"}),
        ("lee", "votes", {"vote": "approve_with_conditions", "conditions": "c\x00c"}),
        ("sam", "admin/users/ada/accreditation", {"until": "2030-01-01", "ref": "r\x00f"}),
    ],
    ids=["conflict-note", "decline-reason", "conditions", "accreditation-ref"],
)
def test_nul_in_review_text_is_a_refusal_not_a_500(
    pg_world: World, who: str, path: str, form: FormData
) -> None:
    """HELD: the pages (and the API) pass text with a NUL character through to PostgreSQL,
    which refuses it: a 500 ``gateway.internal`` for a conflict note, a custodian's decline
    reason, a vote's conditions or an accreditation reference, instead of a refusal naming
    the field."""
    app_id = pg_world.submitted()
    if who == "lee":
        pg_world.committee.declare("lee", app_id, conflict=False)
    with committee_client(pg_world) as c:
        target = path if path.startswith("admin/") else f"applications/{app_id}/{path}"
        answer = post(c, who, target, form)
    _not_500(answer)


@pytest.mark.postgres
def test_an_outsiders_status_post_is_refused_and_audited_on_postgres(pg_world: World) -> None:
    """HOLE (500 and audit gap): a researcher posting the admin status form with an action
    over 33 characters (the audit event ``project.<action>`` outgrows ``VARCHAR(40)``) or a
    slug over 192 characters (the object ``project:<slug>`` outgrows ``VARCHAR(200)``) gets a
    500, and the refusal ``committee.admin-only`` is never written: the audit insert is
    what fails."""
    with committee_client(pg_world) as c:
        for path, action in (
            ("admin/projects/some-project/status", "a" * 60),
            ("admin/projects/" + "a" * 250 + "/status", "suspend"),
        ):
            before = _audit_count(pg_world)
            answer = post(c, "tom", path, {"action": action, "reason": "x"})
            _not_500(answer)
            assert answer.status_code == 403
            assert any(
                u == "tom" and rule == "committee.admin-only"
                for u, _, _, _, rule in _audit(pg_world)[before:]
            )


@pytest.mark.postgres
def test_a_long_project_slug_is_refused_on_the_form(pg_world: World) -> None:
    """HELD: the API limits ``project`` to 63 characters; the page's form does not, and
    saving a draft whose slug is over 64 characters writes it to ``applications.project``
    (``VARCHAR(64)``): a 500 instead of the form again with the field's problem (and the
    typed form lost)."""
    with committee_client(pg_world) as c:
        answer = post(
            c, "ada", "applications", {"project": "p" * 70, "title": "t", "action": "save"}
        )
    _not_500(answer)


# == attacks that held =====================================================================


def test_csrf_is_per_user_and_required_on_every_form(world: World, client: TestClient) -> None:
    """Held: another user's token, a missing token, the token in the query string instead
    of the body, and a JSON body are all refused (403 ``pages.csrf`` / 400 ``pages.form``)
    on the forms that change things."""
    app_id = world.submitted()
    lee_token = csrf(client, "lee")
    # kim (also on the committee) with lee's token
    answer = post(
        client, "kim", f"applications/{app_id}/conflicts", {"conflict": "no"}, token=lee_token
    )
    assert answer.status_code == 403
    assert "[pages.csrf]" in answer.text
    answer = post(client, "ada", f"applications/{app_id}/withdraw", token="")
    assert answer.status_code == 403
    answer = client.post(
        f"{PREFIX}applications/{app_id}/withdraw?csrf={csrf(client, 'ada')}",
        content=b"",
        headers={**headers("ada"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403
    answer = client.post(
        f"{PREFIX}applications/{app_id}/withdraw",
        content=b'{"csrf": "%s"}' % csrf(client, "ada").encode(),
        headers={**headers("ada"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    answer = post(
        client,
        "tom",
        "admin/users/tom/roles",
        {"role": "admin", "op": "grant"},
        token=csrf(client, "sam"),
    )
    assert answer.status_code == 403
    assert world.committee.get("ada", app_id)["state"] == "submitted"
    assert "admin" not in get_user(world.store, "tom").roles


def test_get_routes_change_nothing(world: World, client: TestClient) -> None:
    """Held: GETting every page (and the POST-only routes by GET) changes no state."""
    app_id = world.submitted()
    before = world.committee.get("ada", app_id)
    for who in ("ada", "lee", "nia", "sam", "tom"):
        for path in (
            "", "applications", "applications/new", f"applications/{app_id}",
            f"applications/{app_id}/edit", f"applications/{app_id}/submit",
            f"applications/{app_id}/withdraw", f"applications/{app_id}/votes?vote=approve",
            "queue", "nodes", "admin", "admin/users", "admin/users/tom/roles?role=admin&op=grant",
            "report", "vocabulary?q=copd",
        ):  # fmt: skip
            assert page(client, who, path).status_code < 500
    after = world.committee.get("lee", app_id)
    assert after["state"] == before["state"] == "submitted"
    assert after["votes"] == []
    assert after["conflicts"] == []
    assert "admin" not in get_user(world.store, "tom").roles


PAYLOAD = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_text_from_anyone_is_escaped_on_every_page(world: World, client: TestClient) -> None:
    """Held: application fields, members, unknown tables/columns/nodes typed on the form,
    conflict notes, conditions, comments, decline reasons, the vocabulary search term, an
    accreditation reference and a status reason on the confirmation page are escaped
    (autoescape is on for every template; no ``|safe``)."""
    app_id = world.submitted(
        title=PAYLOAD, lay_summary=PAYLOAD, purpose=PAYLOAD, ethics_ref=PAYLOAD
    )
    world.committee.declare("kim", app_id, conflict=True, note=PAYLOAD)
    world.committee.declare("lee", app_id, conflict=False)
    world.committee.vote(
        "lee", app_id, "approve_with_conditions", conditions=PAYLOAD, comment=PAYLOAD
    )
    world.committee.node_decision("oli", app_id, "elht", agree=False, reason=PAYLOAD)
    typed = post(
        client, "ada", "applications",
        {"project": PAYLOAD, "members": PAYLOAD, f"table:{PAYLOAD}": PAYLOAD, "nodes": PAYLOAD,
         "table:person": PAYLOAD, "q": PAYLOAD, "action": "search", "cohort": [PAYLOAD]},
    )  # fmt: skip
    texts = [
        typed.text,
        page(client, "lee", f"applications/{app_id}").text,
        page(client, "ada", f"applications/{app_id}").text,
        page(client, "ada", "applications").text,
        page(client, "lee", "queue").text,
        page(client, "oli", "nodes").text,
        page(client, "ada", f"vocabulary?q={httpx.QueryParams({'q': PAYLOAD})['q']}").text,
        page(client, "ada", "vocabulary?fragment=1&q=%3Cscript%3E").text,
    ]
    world.approve(world.submitted())
    slug = world.committee.list_for("ada")[0]["project"]
    post(
        client,
        "sam",
        "admin/users/ada/accreditation",
        {"until": "2030-01-01", "ref": PAYLOAD[:150]},
    )
    texts.append(page(client, "sam", "admin/users/ada").text)
    texts.append(
        post(
            client, "sam", f"admin/projects/{slug}/status", {"action": "suspend", "reason": PAYLOAD}
        ).text
    )
    for text in texts:
        assert "<script>alert" not in text
        assert "<img src=x" not in text
    assert get_project(world.store, slug).status == "active"  # the confirmation page only


def test_idor_on_applications_holds(world: World, client: TestClient) -> None:
    """Held: someone else's draft is missing (404) to an outsider, a committee member and a
    custodian; nobody but the applicant edits, submits or withdraws; the applicant and a
    member named in it cannot vote; a custodian answers only for their own node; a
    committee member cannot rewrite a submitted application through the form."""
    draft = world.reach(State.DRAFT)
    for who in ("tom", "lee", "nia", "sam"):
        assert page(client, who, f"applications/{draft}").status_code == 404
        assert page(client, who, f"applications/{draft}/edit").status_code == 404
        assert post(client, who, f"applications/{draft}/submit").status_code == 404
        assert (
            post(
                client, who, f"applications/{draft}", {"title": "mine", "action": "save"}
            ).status_code
            == 404
        )
    app_id = world.submitted()
    for who in ("ada", "ben"):
        assert post(
            client, who, f"applications/{app_id}/conflicts", {"conflict": "no"}
        ).status_code in (403, 404)
        assert post(
            client, who, f"applications/{app_id}/votes", {"vote": "approve"}
        ).status_code in (403, 404)
    answer = post(
        client, "nia", f"applications/{app_id}/nodes/elht", {"agree-elht": "no", "reason-elht": "x"}
    )
    assert answer.status_code == 403
    assert "[committee.not-custodian]" in answer.text
    answer = post(client, "lee", f"applications/{app_id}", {"title": "rewritten", "action": "save"})
    assert answer.status_code == 403
    answer = post(
        client, "ada", f"applications/{app_id}", {"title": "rewritten", "action": "submit"}
    )
    assert answer.status_code in (403, 409)
    assert world.committee.get("ada", app_id)["title"] != "rewritten"
    assert world.committee.get("ada", app_id)["nodes_decided"] == []


def test_the_cohort_preview_is_only_for_reviewers(world: World, tmp_path: Path) -> None:
    """Held: the cohort's size per node is shown to committee members and custodians only,
    never to the applicant, a member it names, an administrator or an outsider."""
    data = tmp_path / "nodes"
    data.mkdir()
    for node in CUSTODIANS:
        node_file(data / f"{node}.duckdb", [(p, COPD, "2020-03-01") for p in range(12)], set())
    app_id = world.submitted()
    with committee_client(world, data) as c:
        for who in ("ada", "ben", "sam"):
            text = page(c, who, f"applications/{app_id}").text
            assert 'id="cohort-sizes"' not in text
            assert "about 10" not in text
        assert page(c, "tom", f"applications/{app_id}").status_code == 404
        assert 'id="cohort-sizes"' in page(c, "lee", f"applications/{app_id}").text


def test_admin_forms_hold(world: World, client: TestClient) -> None:
    """Held: a non-admin cannot reach an admin page or form (404) nor change a project's
    status (403); an admin cannot remove their own admin role; a revoked project cannot be
    reinstated by posting the confirmed form directly; an unknown role is refused."""
    app_id = world.submitted()
    world.approve(app_id)
    slug = world.committee.get("ada", app_id)["project"]
    for who in ("tom", "lee", "nia"):
        for path in (
            "admin",
            "admin/users",
            "admin/users/sam",
            "admin/projects",
            f"admin/projects/{slug}",
        ):
            assert page(client, who, path).status_code == 404
        answer = post(
            client,
            who,
            f"admin/projects/{slug}/status",
            {"action": "revoke", "reason": "x", "confirm": "yes"},
        )
        assert answer.status_code == 403
    assert (
        post(client, "sam", "admin/users/sam/roles", {"role": "admin", "op": "remove"}).status_code
        == 400
    )
    assert (
        post(
            client, "sam", "admin/users/tom/roles", {"role": "superuser", "op": "grant"}
        ).status_code
        == 400
    )
    change_status(world.store, "sam", slug, "revoke", "breach")
    answer = post(
        client,
        "sam",
        f"admin/projects/{slug}/status",
        {"action": "reactivate", "reason": "oops", "confirm": "yes"},
    )
    assert answer.status_code in (400, 409)
    assert get_project(world.store, slug).status == "revoked"
    assert "admin" in get_user(world.store, "sam").roles


@pytest.mark.parametrize(
    "q",
    ["' OR 1=1 --", "%", "(a+)+$", ".*" * 100, "x" * 5_000, "\x00", "🦠 copd", "255573 OR 1=1"],
)
def test_the_vocabulary_search_takes_anything(client: TestClient, q: str) -> None:
    """Held: the search is a plain substring match over the bundled vocabulary (no SQL,
    no regex), capped at 200 characters: odd queries answer a page."""
    answer = client.get(PREFIX + "vocabulary", params={"q": q}, headers=headers("tom"))
    assert answer.status_code == 200
    assert "' OR 1=1" not in answer.text


def test_garbled_forms_are_refusals_not_500s(world: World, client: TestClient) -> None:
    """Held: a non-UTF-8 body, a body over the limit (declared or streamed), too many
    fields, a duplicated token and odd vote / conflict values answer refusal pages."""
    app_id = world.submitted()
    token = csrf(client, "lee")
    hdrs = {**headers("lee"), "Content-Type": "application/x-www-form-urlencoded"}
    url = f"{PREFIX}applications/{app_id}/votes"
    assert (
        client.post(
            url, content=b"csrf=" + token.encode() + b"&vote=%FF%FE", headers=hdrs
        ).status_code
        == 400
    )
    assert client.post(url, content=b"a=" + b"x" * 300_000, headers=hdrs).status_code in (400, 413)
    assert client.post(url, content=b"&".join([b"a=1"] * 5_000), headers=hdrs).status_code in (
        400,
        413,
    )
    both = f"csrf=bad&csrf={token}&vote=approve".encode()
    assert client.post(url, content=both, headers=hdrs).status_code == 409  # declare first
    votes: list[FormData] = [
        {"vote": "approve_everything"},
        {"vote": ""},
        {"vote": ["approve", "reject"]},
    ]
    for form in votes:
        _not_500(post(client, "lee", f"applications/{app_id}/votes", form))
    conflicts: list[FormData] = [{"conflict": "maybe"}, {"conflict": "yes", "note": " "}]
    for form in conflicts:
        assert post(client, "lee", f"applications/{app_id}/conflicts", form).status_code == 400
    _not_500(
        post(client, "ada", "applications", {"sdc_threshold": "9" * 5000, "dp_epsilon": "nan"})
    )


def test_a_second_application_for_a_taken_slug_does_not_take_the_project_over(
    world: World, client: TestClient
) -> None:
    """Held: two new applications for one slug, both submitted before either is approved:
    once the first is approved, the deciding vote on the second is refused
    (``project.exists``), so its applicant never becomes the project's PI. (It then stays
    under review: only defer or reject can settle it.)"""
    first = world.committee.create("ada", fields("same-slug"))["id"]
    world.committee.submit("ada", first)
    second = world.committee.create(
        "tom", fields("same-slug", pi="tom", members=[], title="Tom's")
    )["id"]
    world.committee.submit("tom", second)
    world.approve(first)
    _decide_all_nodes(client, second)
    answers = []
    for member in ("kim", "lee", "max"):
        post(client, member, f"applications/{second}/conflicts", {"conflict": "no"})
        answers.append(post(client, member, f"applications/{second}/votes", {"vote": "approve"}))
    assert answers[-1].status_code == 400
    assert "[project.exists]" in answers[-1].text
    members = {(m.username, m.role) for m in get_project(world.store, "same-slug").members}
    assert members == {("ada", "pi"), ("ben", "member")}


def test_a_token_from_another_sign_in_of_the_same_user_is_refused(
    world: World, client: TestClient
) -> None:
    """Held: the CSRF token is bound to the sign-in (the hub token or signed cookie), not
    only the user: ada's token from another session is refused, as is a token for the
    empty session; a ``?done=`` confirmation is never echoed."""
    app_id = world.submitted()
    secret = client.app.state.committee_pages.secret  # type: ignore[attr-defined]
    for session in ("another-sign-in", ""):
        stale = csrf_token(secret, "ada", session)
        answer = post(client, "ada", f"applications/{app_id}/withdraw", token=stale)
        assert answer.status_code == 403
    assert world.committee.get("ada", app_id)["state"] == "submitted"
    shown = page(client, "ada", "applications?done=%3Cscript%3Ealert(1)%3C/script%3E").text
    assert "alert(1)" not in shown
