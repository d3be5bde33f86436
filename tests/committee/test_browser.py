"""The committee's whole path in headless Chromium, through the pages only.

An applicant fills the application form (a vocabulary search by name and by code, a
concept picked), is refused for a bad field with everything kept, fixes it and submits;
three committee members declare no conflict and approve with conditions; the three
custodians agree; the applicant sees the approved project and its conditions. The app runs
under uvicorn on a loopback port for the module, on node files made for the test (so the
review page shows the cohort's size per node); a browser context per person signs in with
a test-only cookie (the product signs in through the hub's OAuth). Each step is saved as a
screenshot in ``test-artifacts/committee/``.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import Request
from playwright import sync_api

from access_committee.app import create_app
from access_committee.workflow import State
from sde.settings import Settings
from tests.committee.http import PREFIX
from tests.committee.test_cohort_size import COPD, EMPHYSEMA, node_file
from tests.committee.world import PEOPLE, World, make_world

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "committee"
COOKIE = "committee-test-user"
CONDITIONS = "Share the analysis code with the patient panel before publication."


class CookieUser:
    """Test-only: the user named by a plain cookie (never in the product)."""

    async def __call__(self, request: Request) -> str | None:
        name = request.cookies.get(COOKIE)
        return name if name in PEOPLE else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nodes(folder: Path) -> Path:
    """lth: 43 persons with COPD; elht: 4 (fewer than 10); umbh: 26 with emphysema."""
    folder.mkdir()
    node_file(folder / "lth.duckdb", [(p, COPD, "2021-05-01") for p in range(43)], set())
    node_file(folder / "elht.duckdb", [(p, COPD, "2021-05-01") for p in range(4)], set())
    node_file(folder / "umbh.duckdb", [(p, EMPHYSEMA, "2019-05-01") for p in range(26)], set())
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    root = tmp_path_factory.mktemp("committee-browser")
    world = make_world(root)
    settings = Settings.model_validate(
        {
            "registry_url": str(world.store.engine.url),
            "committee_quorum": 3,
            "data_dir": str(_nodes(root / "nodes")),
            "SDE_GATEWAY_PREFIX": PREFIX,
        }
    )
    app = create_app(settings, CookieUser(), store=world.store)
    app.state.committee = world.committee
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield world, f"http://127.0.0.1:{port}{PREFIX}"
    server.should_exit = True
    thread.join(timeout=10)


class Person:
    """One person's browser context, signed in with the test cookie."""

    def __init__(self, browser: sync_api.Browser, base: str, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_cookies([{"name": COOKIE, "value": name, "url": base}])
        self.page = self.context.new_page()
        self.base = base

    def goto(self, path: str = "") -> None:
        answer = self.page.goto(self.base + path)
        assert answer is not None
        assert answer.status == 200, answer.status

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def button(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()
        self.page.wait_for_load_state()

    def ok(self, text: str) -> None:
        sync_api.expect(self.page.get_by_role("status")).to_contain_text(text)

    def close(self) -> None:
        self.context.close()


def _fill_application(ada: Person) -> None:
    """Everything but a good expiry date."""
    p = ada.page
    p.get_by_label("Project name (slug)", exact=True).fill("copd-imd")
    p.get_by_label("Title", exact=True).fill("COPD admissions by deprivation")
    p.get_by_label("Lay summary", exact=True).fill(
        "Do people with COPD in poorer areas go to hospital more?"
    )
    p.get_by_label("Purpose", exact=True).fill(
        "Count admissions per person by IMD decile, 2018-2024."
    )
    p.get_by_label("Public benefit", exact=True).fill(
        "Targets pulmonary rehabilitation where it is needed."
    )
    p.get_by_label("Other members (user names)", exact=True).fill("ben")
    p.get_by_label("Aggregates", exact=True).check()
    for table, columns in {
        "person": ("person_id", "year_of_birth", "gender_concept_id"),
        "condition_occurrence": ("condition_concept_id", "condition_start_date"),
    }.items():
        p.locator("details.table-choice summary", has_text=table).first.click()
        for column in columns:
            p.locator(f'input[name="table:{table}"][value="{column}"]').check()
    sync_api.expect(p.locator('input[value="person_source_value"]')).to_have_count(0)
    p.get_by_label("From", exact=True).fill("2018-01-01")
    p.get_by_label("To", exact=True).fill("2024-12-31")
    for node in ("lth", "elht", "umbh"):
        p.locator(f'input[name="nodes"][value="{node}"]').check()
    p.get_by_label("Legal basis", exact=True).fill("UK GDPR 6(1)(e) and 9(2)(j)")
    p.get_by_label("Ethics reference", exact=True).fill("REC 25/NW/0042")


def _pick_cohort(ada: Person) -> None:
    """Search by name, pick COPD; search by code, see childhood asthma under asthma."""
    p = ada.page
    search = p.get_by_label("Search the vocabulary by name, SNOMED code or concept id", exact=True)
    search.fill("obstructive lung")
    ada.button("Search the vocabulary")
    results = p.locator("#vocabulary-results")
    sync_api.expect(results).to_contain_text("Chronic obstructive lung disease")
    sync_api.expect(results).to_contain_text("Pulmonary emphysema")  # its descendants
    ada.shot("03-vocabulary-by-name")
    p.get_by_role("checkbox", name="Pick Chronic obstructive lung disease").check()
    search.fill("233678006")  # SNOMED: childhood asthma
    ada.button("Search the vocabulary")
    sync_api.expect(results).to_contain_text("Childhood asthma")
    sync_api.expect(results).to_contain_text("A kind of Asthma.")
    sync_api.expect(p.locator("#picked")).to_contain_text("Chronic obstructive lung disease")
    ada.shot("04-vocabulary-by-code")


def test_apply_review_approve(served: tuple[World, str], chromium: sync_api.Browser) -> None:
    world, base = served
    for old in ARTIFACTS.glob("*.png"):  # this test's own screenshots of an earlier run
        old.unlink()
    ada = Person(chromium, base, "ada")

    # The applicant fills the form, is refused for a bad expiry with everything kept.
    ada.goto()
    ada.shot("01-applicant-home")
    ada.page.get_by_role("link", name="Start a new application").click()
    sync_api.expect(
        ada.page.get_by_label("Principal investigator (user name)", exact=True)
    ).to_have_value("ada")
    _fill_application(ada)
    ada.shot("02-form-filled")
    _pick_cohort(ada)
    ada.page.get_by_label("Access ends on", exact=True).fill("2020-01-01")
    ada.button("Submit for review")
    summary = ada.page.locator("#error-summary")
    sync_api.expect(summary).to_contain_text("expires: 2020-01-01 is not in the future")
    sync_api.expect(summary).to_contain_text("[application.expires]")
    sync_api.expect(ada.page.locator("#expires-error")).to_be_visible()
    ada.shot("05-refused-everything-kept")
    for label, value in {
        "Title": "COPD admissions by deprivation",
        "Other members (user names)": "ben",
        "From": "2018-01-01",
        "Access ends on": "2020-01-01",
    }.items():
        sync_api.expect(ada.page.get_by_label(label, exact=True)).to_have_value(value)
    sync_api.expect(
        ada.page.locator('input[name="table:person"][value="year_of_birth"]')
    ).to_be_checked()
    sync_api.expect(ada.page.locator('input[name="cohort"][value="255573"]')).to_be_checked()
    summary.get_by_role("link").first.click()  # the summary links to the field
    expires = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    ada.page.get_by_label("Access ends on", exact=True).fill(expires)
    ada.button("Submit for review")
    ada.ok("Your application was submitted")
    app_id = int(ada.page.url.split("/applications/")[1].split("?")[0])
    assert world.committee.get("ada", app_id)["state"] == State.SUBMITTED
    ada.shot("06-submitted")

    # Three committee members declare no conflict and approve with conditions.
    for number, name in enumerate(("kim", "lee", "max")):
        member = Person(chromium, base, name)
        member.goto("queue")
        row = member.page.get_by_role("row").filter(has_text=f"Application {app_id}")
        sync_api.expect(row).to_contain_text("not declared")
        if number == 1:
            member.shot("07-committee-queue")
        member.page.get_by_role("link", name=f"Application {app_id}").click()
        sizes = member.page.locator("#cohort-sizes")
        sync_api.expect(sizes).to_contain_text("about 40")  # lth: 43
        sync_api.expect(sizes).to_contain_text("fewer than 10")  # elht: 4
        sync_api.expect(sizes).to_contain_text("about 30")  # umbh: 26 (emphysema is COPD)
        if number == 0:
            member.shot("08-committee-review")
        member.page.get_by_label("No conflict", exact=True).check()
        member.button("Record your declaration")
        member.ok("Your declaration was recorded")
        member.page.get_by_label("Approve with conditions", exact=True).check()
        member.page.get_by_label("Conditions (for an approval with conditions)", exact=True).fill(
            CONDITIONS
        )
        member.page.get_by_label("Comment", exact=True).fill(
            f"{name}: a clear, proportionate request."
        )
        member.button("Record your vote")
        member.ok("Your vote was recorded")
        if number == 2:
            sync_api.expect(member.page.locator("#tally")).to_contain_text("3 counted votes")
            member.shot("09-committee-voted")
        member.close()
    assert world.committee.get("ada", app_id)["state"] == State.UNDER_REVIEW  # nodes to come

    # The custodians agree for their nodes.
    for node, name in (("lth", "nia"), ("elht", "oli"), ("umbh", "pat")):
        custodian = Person(chromium, base, name)
        custodian.goto("nodes")
        pending = custodian.page.get_by_role("row").filter(has_text=f"Application {app_id}")
        sync_api.expect(pending).to_contain_text(node)
        if node == "lth":
            custodian.shot("10-custodian-pending")
        pending.get_by_role("link").click()
        custodian.page.get_by_label(f"{node} agrees").check()
        custodian.button(f"Record the answer for {node}")
        custodian.ok("Your decision for the node was recorded")
        if node == "umbh":
            custodian.shot("11-custodian-agreed")
        custodian.close()
    assert world.committee.get("ada", app_id)["state"] == State.APPROVED_WITH_CONDITIONS

    # The applicant sees the approved project and its conditions.
    ada.goto("applications")
    row = ada.page.get_by_role("row").filter(has_text=f"Application {app_id}")
    sync_api.expect(row).to_contain_text("approved with conditions")
    sync_api.expect(row).to_contain_text(CONDITIONS)
    ada.shot("12-applicant-approved")
    ada.page.get_by_role("link", name=f"Application {app_id}").click()
    sync_api.expect(ada.page.locator("#conditions")).to_have_text(CONDITIONS)
    ada.shot("13-application-decision")
    ada.page.get_by_role("link", name="copd-imd").click()
    sync_api.expect(ada.page.get_by_role("heading", level=1)).to_have_text("Project copd-imd")
    sync_api.expect(ada.page.get_by_role("main")).to_contain_text("active")
    sync_api.expect(ada.page.locator("#project-conditions")).to_have_text(CONDITIONS)
    ada.shot("14-project")
    ada.close()


def test_the_vocabulary_search_without_javascript(
    served: tuple[World, str], chromium: sync_api.Browser
) -> None:
    """Without the script, the search posts the form and it comes back as typed."""
    world, base = served
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    context.add_cookies([{"name": COOKIE, "value": "tom", "url": base}])
    p = context.new_page()
    p.goto(base + "applications/new")
    p.get_by_label("Title", exact=True).fill("Asthma in children")
    p.get_by_label("Search the vocabulary by name, SNOMED code or concept id").fill("asthma")
    p.get_by_role("button", name="Search the vocabulary").click()
    sync_api.expect(p.locator("#vocabulary-results")).to_contain_text("Childhood asthma")
    sync_api.expect(p.get_by_label("Title", exact=True)).to_have_value("Asthma in children")
    p.get_by_role("checkbox", name="Pick Childhood asthma").check()
    p.get_by_role("button", name="Save as a draft", exact=True).last.click()
    sync_api.expect(p.get_by_role("status")).to_contain_text("Your draft was saved.")
    sync_api.expect(p.locator("#picked")).to_contain_text("Childhood asthma")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / "15-no-script-search-saved.png"), full_page=False)
    (mine,) = [a for a in world.committee.list_for("tom") if a["applicant"] == "tom"]
    assert world.committee.get("tom", mine["id"])["cohort"] == {"any_condition": [4051466]}
    context.close()
