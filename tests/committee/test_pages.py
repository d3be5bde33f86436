"""The committee's pages over HTTP: who sees each page, every form, refusals with their rule,
nothing typed lost."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from access_committee.app import create_app
from access_committee.forms import FIELDS
from access_committee.workflow import Action, State
from sde.gateway.auth import HubAuthenticator
from sde.registry.audit_log import AuditEntry
from sde.settings import Settings
from tests.committee.http import PREFIX, committee_client, headers, page, post
from tests.committee.test_cohort_size import COPD, EMPHYSEMA, node_file
from tests.committee.truth_table import expected
from tests.committee.world import ACTOR, NEXT_YEAR, World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with committee_client(world) as c:
        yield c


def refused(answer: httpx.Response, status: int, rule: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert f"[{rule}]" in answer.text


# -- the home page -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "shown", "hidden"),
    [
        ("ada", ["applications/new"], ["queue", "nodes", "admin"]),
        ("lee", ["queue", "report"], ["nodes", "admin"]),
        ("nia", ["nodes"], ["queue", "admin"]),
        ("sam", ["admin", "report"], ["queue", "nodes"]),
    ],
)
def test_home_links_to_what_the_caller_may_do(
    client: TestClient, who: str, shown: list[str], hidden: list[str]
) -> None:
    answer = page(client, who, "")
    assert answer.status_code == 200
    assert "these pages are coming" not in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    for path in shown:
        assert f'href="{PREFIX}{path}"' in answer.text
    for path in hidden:
        assert f'href="{PREFIX}{path}"' not in answer.text


def test_pages_without_a_sign_in_are_401(client: TestClient) -> None:
    refused(page(client, None, ""), 401, "auth.unauthenticated")


def test_the_script_is_served(client: TestClient) -> None:
    answer = client.get(PREFIX + "assets/committee.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")


# -- applicants ----------------------------------------------------------------------------


def _form(**changes: str | list[str]) -> dict[str, str | list[str]]:
    """The application form of ``world.fields()`` as a browser posts it."""
    form: dict[str, str | list[str]] = {
        "project": "copd-outcomes",
        "title": "COPD outcomes by deprivation",
        "lay_summary": "Do people in poorer areas with COPD do worse?",
        "purpose": "Describe admissions by IMD decile",
        "public_benefit": "Targets pulmonary rehabilitation",
        "pi": "ada",
        "members": "ben",
        "access": "aggregates",
        "table:person": ["person_id", "year_of_birth"],
        "table:condition_occurrence": ["condition_occurrence_id", "condition_concept_id"],
        "cohort": ["255573"],
        "period_start": "2018-01-01",
        "period_end": "2024-12-31",
        "nodes": ["lth", "elht", "umbh"],
        "legal_basis": "GDPR 6(1)(e), 9(2)(j)",
        "ethics_ref": "REC 24/NW/0001",
        "expires": NEXT_YEAR.isoformat(),
        "action": "save",
    }
    return {**form, **changes}


def _typed_values_shown(text: str, form: dict[str, str | list[str]]) -> None:
    """Every text the form sent is in the page again, each box ticked again."""
    for name, value in form.items():
        if name in ("action", "csrf"):
            continue
        for v in value if isinstance(value, list) else [value]:
            if name.startswith("table:") or name in ("cohort", "nodes"):
                box = re.search(
                    rf'<input type="checkbox" name="{re.escape(name)}" value="{re.escape(v)}"'
                    r"[^>]*checked",
                    text,
                )
                assert box, f"{name}={v} not ticked again"
            else:
                assert html.escape(v, quote=True) in text, f"{name}={v!r} lost"


def test_the_new_form_has_every_field(client: TestClient) -> None:
    text = page(client, "ada", "applications/new").text
    for name in FIELDS:
        assert f'id="field-{name}"' in text, name
    # Columns never exposed are shown, but cannot be ticked.
    withheld = re.search(r'<label class="choice withheld"><input type="checkbox" disabled> '
                         r"person_source_value", text)  # fmt: skip
    assert withheld
    assert 'name="table:person" value="person_source_value"' not in text
    assert 'name="table:cost"' not in text  # a table no scope may list is not offered
    for node in ("lth", "elht", "umbh"):
        assert f'name="nodes" value="{node}"' in text


def test_save_a_draft_then_edit_it(world: World, client: TestClient) -> None:
    form = _form(title="", members="ben, tom")
    answer = post(client, "ada", "applications", form)
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("/edit?done=saved")
    app_id = int(answer.headers["location"].split("/")[-2])
    saved = world.committee.get("ada", app_id)
    assert saved["members"] == ["ben", "tom"]
    assert saved["tables"]["person"] == ["person_id", "year_of_birth"]
    assert saved["cohort"] == {"any_condition": [255573]}
    edit = page(client, "ada", f"applications/{app_id}/edit?done=saved")
    assert "Your draft was saved." in edit.text
    _typed_values_shown(edit.text, {k: v for k, v in form.items() if k != "members"})
    assert "ben, tom" in edit.text
    # The problems are listed, each beside its field.
    assert '<a href="#field-title">title: is required</a>' in edit.text
    assert 'id="title-error"' in edit.text
    fixed = post(client, "ada", f"applications/{app_id}", _form(members="ben", action="submit"))
    assert fixed.status_code == 303
    assert world.committee.get("ada", app_id)["state"] == "submitted"


@pytest.mark.parametrize(
    ("changes", "rule", "field", "message"),
    [
        ({"title": "", "purpose": ""}, "application.title", "title", "is required"),
        (
            {"table:person": ["person_id", "no_such_column"]},
            "application.tables",
            "tables",
            "no_such_column",
        ),
        (
            {"period_start": "2024-13-45"},
            "application.period",
            "period",
            "2024-13-45",
        ),
        (
            {"period_start": "2024-06-01", "period_end": "2020-01-01"},
            "application.period",
            "period",
            "is after end",
        ),
        ({"expires": "2001-01-01"}, "application.expires", "expires", "not in the future"),
        ({"members": "una"}, "application.members", "members", "accreditation"),
        ({"nodes": ["lth", "mars"]}, "application.nodes", "nodes", "is not a node of this SDE"),
        ({"access": "dp"}, "application.dp", "dp", "privacy budget"),
    ],
)
def test_a_refused_submission_keeps_everything(
    client: TestClient, changes: dict[str, str | list[str]], rule: str, field: str, message: str
) -> None:
    form = _form(action="submit", **changes)
    answer = post(client, "ada", "applications", form)
    refused(answer, 400, rule)
    summary = answer.text[answer.text.index('id="error-summary"') :]
    assert "Your draft was saved, but it cannot be submitted" in summary
    assert f'href="#field-{field}"' in summary
    assert message in summary
    assert f'id="{field}-error"' in answer.text  # beside its field too
    _typed_values_shown(answer.text, form)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"access": "dp", "dp_epsilon": "lots", "dp_delta": "1e-6"}, "dp", "epsilon must be"),
        ({"sdc_threshold": "ten"}, "sdc", "threshold must be a whole number"),
        ({"cohort": ["255573", "COPD"]}, "cohort", "is not a concept id"),
    ],
)
def test_what_a_form_cannot_say_is_refused_on_the_form(
    world: World, client: TestClient, changes: dict[str, str | list[str]], field: str, message: str
) -> None:
    form = _form(**changes)
    answer = post(client, "ada", "applications", form)
    refused(answer, 400, f"application.{field}")
    assert message in answer.text
    assert world.committee.list_for("ada") == []  # nothing saved
    _typed_values_shown(answer.text, form)


def test_text_too_long_is_refused_with_the_form(client: TestClient) -> None:
    form = _form(purpose="x" * 20_001)
    answer = post(client, "ada", "applications", form)
    refused(answer, 400, "application.purpose")
    assert 'href="#field-purpose"' in answer.text
    assert "x" * 20_001 in answer.text


def test_only_the_accredited_apply(client: TestClient) -> None:
    refused(page(client, "una", "applications/new"), 403, "committee.not-accredited")
    refused(page(client, "lee", "applications/new"), 403, "committee.not-accredited")
    form = _form(pi="una")
    answer = post(client, "una", "applications", form)
    refused(answer, 403, "committee.not-accredited")
    _typed_values_shown(answer.text, form)


def test_forms_without_csrf_or_too_large_or_garbled(world: World, client: TestClient) -> None:
    forged = post(client, "ada", "applications", _form(), token="forged")  # noqa: S106
    refused(forged, 403, "pages.csrf")
    refused(post(client, "ada", "applications", _form(), token=""), 403, "pages.csrf")
    big = post(client, "ada", "applications", _form(purpose="x" * 300_000))
    refused(big, 413, "limits.too-large")
    many = post(client, "ada", "applications", [("table:person", "x")] * 5_000)
    refused(many, 413, "limits.too-large")
    garbled = client.post(
        PREFIX + "applications",
        content=b"csrf=\xff\xfe",
        headers={**headers("ada"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    refused(garbled, 400, "pages.form")
    json_body = client.post(PREFIX + "applications", json={"a": 1}, headers=headers("ada"))
    refused(json_body, 400, "pages.form")
    assert world.committee.list_for("ada") == []


def test_unknown_or_unseen_applications_are_missing(world: World, client: TestClient) -> None:
    draft = world.reach(State.DRAFT)
    for path in (f"applications/{draft}", f"applications/{draft}/edit"):
        refused(page(client, "tom", path), 404, "committee.unknown")
        refused(page(client, "lee", path), 404, "committee.unknown")
    refused(page(client, "ada", "applications/99999"), 404, "committee.unknown")
    refused(post(client, "ada", "applications/99999", _form()), 404, "committee.unknown")
    refused(post(client, "tom", f"applications/{draft}", _form()), 404, "committee.unknown")
    refused(post(client, "ada", "applications/99999/withdraw"), 404, "committee.unknown")
    for path in ("applications/0", "applications/x", "applications/²", "applications/1" + "0" * 12):
        refused(page(client, "ada", path), 404, "committee.unknown")
    refused(page(client, "ada", "projects/UPPER"), 404, "project.unknown")


def test_a_submitted_application_is_not_edited(world: World, client: TestClient) -> None:
    app_id = world.reach(State.SUBMITTED)
    refused(page(client, "ada", f"applications/{app_id}/edit"), 409, "committee.invalid-transition")
    answer = post(client, "ada", f"applications/{app_id}", _form(title="Changed"))
    refused(answer, 409, "committee.invalid-transition")
    assert "Changed" in answer.text


def test_vocabulary_search_by_name_and_code(client: TestClient) -> None:
    by_name = page(client, "ada", "vocabulary?q=obstructive+lung").text
    assert "Chronic obstructive lung disease" in by_name
    assert "Pulmonary emphysema" in by_name  # its descendants are shown
    by_code = page(client, "ada", "vocabulary?q=233678006").text  # SNOMED: childhood asthma
    assert "Childhood asthma" in by_code
    assert "A kind of Asthma." in by_code
    fragment = page(client, "ada", "vocabulary?q=asthma&fragment=1&picked=317009")
    assert fragment.text.lstrip().startswith('<div id="vocabulary-results"')
    assert '<input type="checkbox" name="cohort" value="4051466">' in fragment.text
    assert "picked" in fragment.text  # asthma itself was picked already
    none = page(client, "ada", "vocabulary?q=" + "z" * 500).text
    assert "No condition concept matches" in none


def test_searching_from_the_form_keeps_it_and_saves_nothing(
    world: World, client: TestClient
) -> None:
    form = _form(action="search", q="depress", title="Typed, not saved")
    answer = post(client, "ada", "applications", form)
    assert answer.status_code == 200
    assert '<input type="checkbox" name="cohort" value="440383">' in answer.text
    _typed_values_shown(answer.text, form)
    assert world.committee.list_for("ada") == []


# -- an application's page for each role ---------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("ada", 200), ("ben", 200), ("lee", 200), ("nia", 200), ("sam", 200), ("tom", 404)],
)
def test_application_page_for_the_right_people(
    world: World, client: TestClient, who: str, status: int
) -> None:
    app_id = world.reach(State.SUBMITTED)
    answer = page(client, who, f"applications/{app_id}")
    assert answer.status_code == status
    forms_shown = set(re.findall(rf'action="{PREFIX}applications/\d+/([a-z/]+)"', answer.text))
    wanted = {
        "ada": {"withdraw"},
        "ben": set(),
        "lee": {"conflicts", "votes"},
        "nia": {"nodes/lth"},
        "sam": set(),
        "tom": set(),
    }[who]
    assert forms_shown == wanted
    if status == 200:
        assert "COPD outcomes by deprivation" in answer.text
    preview = "What the scope will expose" in answer.text
    assert preview is (who in ("lee", "nia"))


def test_a_committee_member_declares_and_votes(world: World, client: TestClient) -> None:
    app_id = world.reach(State.SUBMITTED)
    url = f"applications/{app_id}"
    early = post(client, "lee", f"{url}/votes", {"vote": "approve", "comment": "Fine by me"})
    refused(early, 409, "committee.declare-first")
    assert "Fine by me" in early.text
    refused(
        post(client, "lee", f"{url}/conflicts", {"note": "n"}), 400, "committee.conflict-choice"
    )
    assert post(client, "lee", f"{url}/conflicts", {"conflict": "no"}).status_code == 303
    shown = page(client, "lee", f"{url}?done=declared").text
    assert "Your declaration was recorded." in shown
    assert f'action="{PREFIX}{url}/votes"' in shown
    no_choice = post(client, "lee", f"{url}/votes", {"comment": "Typed comment"})
    refused(no_choice, 400, "committee.vote-choice")
    assert "Typed comment" in no_choice.text
    bare = post(client, "lee", f"{url}/votes", {"vote": "approve_with_conditions", "comment": "c"})
    refused(bare, 400, "committee.conditions")
    assert 'value="approve_with_conditions" checked' in bare.text
    assert "0 counted votes of the 3 a decision needs" in bare.text
    conditions = "Report results to the patient panel"
    voted = post(
        client, "lee", f"{url}/votes", {"vote": "approve_with_conditions", "conditions": conditions}
    )
    assert voted.status_code == 303
    assert world.committee.get("lee", app_id)["votes"][0]["conditions"] == conditions
    refused(
        post(client, "ada", f"{url}/votes", {"vote": "approve"}), 403, "committee.not-permitted"
    )


def test_a_custodian_agrees_or_declines_with_a_reason(world: World, client: TestClient) -> None:
    app_id = world.reach(State.SUBMITTED)
    url = f"applications/{app_id}/nodes"
    no_reason = post(client, "nia", f"{url}/lth", {"agree-lth": "no", "reason-lth": " "})
    refused(no_reason, 400, "committee.node-reason")
    assert 'name="agree-lth" value="no" checked' in no_reason.text
    declined = post(client, "nia", f"{url}/lth", {"agree-lth": "no", "reason-lth": "No capacity"})
    assert declined.status_code == 303
    refused(
        post(client, "nia", f"{url}/elht", {"agree-elht": "yes"}), 403, "committee.not-custodian"
    )
    refused(post(client, "nia", f"{url}/lth", {}), 400, "committee.agree-choice")
    refused(post(client, "tom", f"{url}/lth", {"agree-lth": "yes"}), 404, "committee.unknown")
    # The applicant sees the node's decline and its reason.
    mine = page(client, "ada", "applications").text
    assert "lth declined</strong>: No capacity" in mine


# -- lists ---------------------------------------------------------------------------------


def test_my_applications_show_state_decision_and_conditions(
    world: World, client: TestClient
) -> None:
    approved = world.reach(State.APPROVED_WITH_CONDITIONS)
    draft = world.reach(State.DRAFT)
    text = page(client, "ada", "applications").text
    row = text[text.index(f"Application {approved}<") :]
    row = row[: row.index("</tr>")]
    assert "approved with conditions" in row
    assert "under a minute" in row
    assert "Conditions:</strong> Report results to the patient panel" in row
    assert f"Application {draft}<" in text
    assert f"Application {draft}<" not in page(client, "tom", "applications").text
    detail = page(client, "ada", f"applications/{approved}").text
    assert 'id="conditions">Report results to the patient panel' in detail


@pytest.mark.parametrize(("who", "status"), [("lee", 200), ("ada", 404), ("nia", 404)])
def test_queue_is_for_committee_members(
    world: World, client: TestClient, who: str, status: int
) -> None:
    app_id = world.reach(State.UNDER_REVIEW)  # kim declared, nobody voted
    world.committee.vote("kim", app_id, "defer")
    answer = page(client, who, "queue")
    assert answer.status_code == status
    if status == 404:
        assert "[pages.not-found]" in answer.text
        return
    row = answer.text[answer.text.index(f"Application {app_id}<") :]
    row = row[: row.index("</tr>")]
    assert "under review" in row
    assert "under a minute" in row
    assert "not declared" in row
    assert "1 defer" in row
    assert "0 of 3" in row


@pytest.mark.parametrize(("who", "status"), [("nia", 200), ("lee", 404), ("ada", 404)])
def test_node_list_is_for_custodians(
    world: World, client: TestClient, who: str, status: int
) -> None:
    app_id = world.reach(State.SUBMITTED)
    answer = page(client, who, "nodes")
    assert answer.status_code == status
    if status == 200:
        pending = answer.text[answer.text.index("Waiting for your answer") :]
        assert f"Application {app_id}<" in pending


def test_expiry_within_30_days_is_a_banner(world: World, client: TestClient) -> None:
    soon = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    app_id = world.submitted(expires=soon)
    world.approve(app_id)
    text = page(client, "ben", "applications").text
    assert 'class="banner"' in text
    assert f"expires in 20 days ({soon})" in text
    assert 'class="banner"' not in page(client, "tom", "applications").text
    assert f"expires in 20 days ({soon})" in page(client, "ada", "").text  # home
    assert f"expires in 20 days ({soon})" in page(client, "lee", "queue").text  # committee


def test_the_project_page_and_an_amendment(world: World, client: TestClient) -> None:
    app_id = world.submitted()
    world.approve(app_id, conditions="Publish the code")
    slug = world.committee.get("ada", app_id)["project"]
    text = page(client, "ada", f"projects/{slug}").text
    assert "Amend this project" in text
    assert 'id="project-conditions">Publish the code<' in text
    assert '<span class="tag tag-active">active</span>' in text
    assert "Amend this project" not in page(client, "ben", f"projects/{slug}").text
    refused(page(client, "tom", f"projects/{slug}"), 404, "project.unknown")
    refused(post(client, "ben", f"projects/{slug}/amendments"), 403, "committee.pi-only")
    made = post(client, "ada", f"projects/{slug}/amendments")
    assert made.status_code == 303
    edit = page(client, "ada", made.headers["location"].removeprefix(PREFIX)).text
    assert "A draft amendment was made" in edit
    assert f'value="{slug}"' in edit
    assert "readonly" in edit


def test_review_shows_the_cohort_size_per_node_rounded(world: World, tmp_path: Path) -> None:
    # lth: 4 persons with COPD; elht: 15; umbh: 14 (tests/committee/test_cohort_size.py).
    data = tmp_path / "nodes"
    data.mkdir()
    node_file(data / "lth.duckdb", [(p, COPD, "2020-03-01") for p in range(4)], set())
    node_file(data / "elht.duckdb", [(p, COPD, "2020-03-01") for p in range(15)], set())
    node_file(data / "umbh.duckdb", [(p, EMPHYSEMA, "2010-03-01") for p in range(14)], set())
    app_id = world.submitted()
    with committee_client(world, data) as c:
        text = page(c, "lee", f"applications/{app_id}").text
        assert "What the scope will expose" not in page(c, "ada", f"applications/{app_id}").text
    with world.store.read() as session:
        shown = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "application.cohort-preview")
        ).all()
    assert [(e.user, e.object) for e in shown] == [("lee", f"application:{app_id}")]
    assert json.loads(shown[0].details or "{}")["sizes"]["elht"] == ["about 20", "about 20"]
    table = text[text.index('id="cohort-sizes"') :]
    table = table[: table.index("</table>")]
    cells = [re.sub(r"<[^>]+>", " ", row).split() for row in table.split("<tr>")[2:]]
    assert [" ".join(c) for c in cells] == [
        "lth fewer than 10 fewer than 10",
        "elht about 20 about 20",
        "umbh about 10 fewer than 10",
    ]
    assert "With a cohort condition in 2018 to 2024" in text
    assert "Chronic obstructive lung disease" in text  # the cohort, with its descendants
    assert "Pulmonary emphysema" in text


def test_with_the_hubs_signed_cookie(world: World) -> None:
    """The product's authenticator: a browser without a sign-in is sent to the hub's login;
    signed in through the hub's OAuth it uses the pages with its cookie; a cross-site form
    post with that cookie but no token is refused."""
    app_id = world.reach(State.SUBMITTED)

    class FakeHub:
        cookie_name = "jupyterhub-services-committee"
        cookie_path = PREFIX
        access_scopes: frozenset[str] = frozenset()
        login_url = "/hub/api/oauth2/authorize"

        async def user_for_token(self, token: str, sync: bool = False) -> dict[str, str]:
            return {"name": "ada", "kind": "user"} if token == "ada-token" else {}  # noqa: S105

        def generate_pkce_code_challenge(self) -> tuple[str, str, str]:
            return "verifier", "challenge", "S256"

        def generate_state(self, next_url: str, code_verifier: str) -> str:
            return "state-" + next_url

    auth = HubAuthenticator(FakeHub())
    settings = Settings.model_validate(
        {"registry_url": str(world.store.engine.url), "SDE_GATEWAY_PREFIX": PREFIX}
    )
    with TestClient(create_app(settings, auth, store=world.store)) as browser:
        away = browser.get(f"{PREFIX}applications", follow_redirects=False)
        assert away.status_code == 302
        assert away.headers["location"].startswith("/hub/api/oauth2/authorize?state=")
        browser.cookies.set(auth.cookie_name, auth.sign("ada-token"))
        shown = browser.get(f"{PREFIX}applications/{app_id}")
        assert shown.status_code == 200
        assert "Withdraw the application" in shown.text
        forged = browser.post(
            f"{PREFIX}applications/{app_id}/withdraw",
            content=b"",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        refused(forged, 403, "pages.csrf")
        assert world.committee.get("ada", app_id)["state"] == "submitted"
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', shown.text)
        assert token
        done = browser.post(
            f"{PREFIX}applications/{app_id}/withdraw",
            data={"csrf": token.group(1)},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert world.committee.get("ada", app_id)["state"] == "withdrawn"


def test_submit_from_the_application_page(world: World, client: TestClient) -> None:
    app_id = world.reach(State.DRAFT)
    shown = page(client, "ada", f"applications/{app_id}").text
    assert f'action="{PREFIX}applications/{app_id}/submit"' in shown
    assert f'href="{PREFIX}applications/{app_id}/edit"' in shown
    done = post(client, "ada", f"applications/{app_id}/submit")
    assert done.headers["location"].endswith(f"/applications/{app_id}?done=submitted")
    again = post(client, "ada", f"applications/{app_id}/submit")
    refused(again, 409, "committee.invalid-transition")


def test_what_people_write_is_escaped(world: World, client: TestClient) -> None:
    app_id = world.submitted(title="<script>alert(1)</script>")
    world.committee.declare("lee", app_id, conflict=False)
    world.committee.vote("lee", app_id, "defer", comment="<b>bold</b>")
    text = page(client, "lee", f"applications/{app_id}").text
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text


#: The forms (or the edit link) each action puts on an application's page.
FORM_OF = {
    Action.EDIT: "edit",
    Action.SUBMIT: "submit",
    Action.WITHDRAW: "withdraw",
    Action.DECLARE: "conflicts",
    Action.VOTE: "votes",
    Action.NODE_DECISION: "nodes/lth",
}


@pytest.mark.parametrize("state", list(State))
def test_the_page_follows_the_truth_table(world: World, client: TestClient, state: State) -> None:
    """Each relation sees the application's page when the API shows it (else 404), with
    exactly the forms of the actions the truth table allows in that state."""
    app_id = world.reach(state)
    for relation, who in ACTOR.items():
        answer = page(client, who, f"applications/{app_id}")
        if expected(Action.VIEW, relation, state) == "404":
            refused(answer, 404, "committee.unknown")
            continue
        assert answer.status_code == 200
        shown = set(
            re.findall(rf'(?:action|href)="{PREFIX}applications/\d+/([a-z/]+)"', answer.text)
        )
        allowed = {
            FORM_OF[action] for action in FORM_OF if expected(action, relation, state) == "ok"
        }
        assert shown == allowed, (relation, state, shown, allowed)


@pytest.mark.parametrize("action", ["save", "search", "submit"])
def test_a_unicode_digit_is_not_a_concept_id(client: TestClient, action: str) -> None:
    form = _form(cohort=["²"], action=action)
    answer = post(client, "ada", "applications", form)
    refused(answer, 400, "application.cohort")
    assert "is not a concept id" in answer.text
    _typed_values_shown(answer.text, form)


def test_dates_are_stored_as_the_dates_they_name(world: World, client: TestClient) -> None:
    answer = post(
        client, "ada", "applications", _form(period_start="2020-W01-1", period_end="20241231")
    )
    app_id = int(answer.headers["location"].split("/")[-2])
    assert world.committee.get("ada", app_id)["period"] == {
        "start": "2019-12-30",
        "end": "2024-12-31",
    }


def test_text_beyond_the_apis_limits_is_refused_on_the_form(
    world: World, client: TestClient
) -> None:
    for changes, field in [
        ({"project": "p" * 70}, "project"),
        ({"pi": "a" * 65}, "pi"),
        ({"members": "b" * 65}, "members"),
    ]:
        form = _form(**changes)
        answer = post(client, "ada", "applications", form)
        refused(answer, 400, f"application.{field}")
        _typed_values_shown(answer.text, form)
    nul = post(client, "ada", "applications", _form(title="a\x00b"))
    refused(nul, 400, "pages.form")
    assert world.committee.list_for("ada") == []


def test_an_amendment_saved_unchanged_keeps_every_setting(world: World, client: TestClient) -> None:
    """Every output-checking setting is on the form, so saving an amendment as it came
    keeps the approved project's settings (none silently back to the defaults)."""
    strict = {
        "threshold": 20,
        "survival_threshold": 50,
        "protection_width": 5.0,
        "zeros_are_disclosive": False,
        "single_review": True,
    }
    app_id = world.submitted(sdc=strict)
    world.approve(app_id)
    slug = world.committee.get("ada", app_id)["project"]
    made = post(client, "ada", f"projects/{slug}/amendments")
    amendment = int(made.headers["location"].split("/")[-2])
    edit = page(client, "ada", f"applications/{amendment}/edit").text
    form = edit[edit.index('id="application-form"') : edit.index("</form>")]
    pairs = [
        (n, v)
        for n, v in re.findall(r'<input type="text"[^>]*name="([^"]+)" value="([^"]*)"', form)
    ]
    pairs += re.findall(
        r'<input type="(?:checkbox|radio)" name="([^"]+)" value="([^"]*)"[^>]*checked', form
    )
    pairs += [
        (n, html.unescape(v))
        for n, v in re.findall(r'name="([^"]+)"[^>]*>([^<]*)</textarea>', form)
    ]
    for name, body in re.findall(r'<select id="[^"]+" name="([^"]+)">(.*?)</select>', form, re.S):
        pairs += [(name, v) for v in re.findall(r'<option value="([^"]*)" selected', body)]
    assert (
        post(client, "ada", f"applications/{amendment}", [*pairs, ("action", "save")]).status_code
        == 303
    )
    assert world.committee.get("ada", amendment)["sdc"] == strict
