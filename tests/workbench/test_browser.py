"""The workbench end to end in a browser: from the login page to a result in a notebook.

Ada (two projects) logs in with her password and one-time code, picks a project, gets
JupyterLab, and queries through the gateway from a notebook: an allowed query shows a
table, an out-of-scope column a one-line refusal, a node's data file is out of her
server's reach, and nothing offers her a download. Tom (accredited, no project) logs in
but gets no notebook server: he is sent to the access committee.

A screenshot after each step goes to ``test-artifacts/browser/`` at the repository root
(``01-login.png``, ...), and the time from submitting the login form to the first table
(the spawn included) to ``timings.json`` there. Times are recorded, never asserted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fixtures.workbench import Workbench
from tests.workbench import lab

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PROJECT = "htn-deprivation"
#: A first spawn (a new OS user, the server, JupyterLab's assets) on a loaded machine.
SPAWN_SECONDS = 240
FIRST_QUERY = (
    "import sde; "
    'sde.connect().sql("SELECT gender_concept_id, COUNT(*) AS n FROM person GROUP BY 1")'
)
OUT_OF_SCOPE = 'import sde; sde.connect().sql("SELECT person_source_value FROM person")'
RULE_ID = re.compile(r"\[[a-z][a-z0-9-]*(\.[a-z0-9-]+)+\]")


@dataclass
class Session:
    """Ada's browser session: the page, and the moments the steps finished."""

    context: BrowserContext
    page: Page
    shots: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def shot(self, name: str) -> None:
        lab.dismiss_news(self.page)
        self.page.screenshot(path=ARTIFACTS / name)
        self.shots.append(name)

    def mark(self, step: str) -> None:
        self.marks[step] = time.monotonic()


def _new_context(chromium: Browser) -> BrowserContext:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(60_000)
    return context


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    """The screenshots' folder, emptied of an earlier run's."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="module")
def ada(workbench: Workbench, chromium: Browser) -> Iterator[Session]:
    """Ada logged in, her server started for htn-deprivation, a new notebook open."""
    context = _new_context(chromium)
    session = Session(context, context.new_page())
    page = session.page
    user = workbench.user("ada")
    lab.fill_login(page, workbench.url, "ada", user["password"], workbench.code("ada"))
    session.shot("01-login.png")
    session.mark("submitted")
    lab.submit_login(page)

    picker = page.locator("select[name=project]")
    picker.wait_for(timeout=120_000)
    session.mark("picker")
    options = picker.locator("option").evaluate_all("els => els.map(e => e.value)")
    assert set(options) == set(user["projects"]), options
    picker.select_option(PROJECT)
    session.shot("02-picker.png")
    page.locator("#spawn_form [type=submit]").click()

    launcher = lab.wait_for_lab(page, SPAWN_SECONDS)
    session.mark("lab")
    assert page.url.startswith(f"{workbench.url}user/ada/lab"), page.url
    session.shot("03-lab.png")

    launcher.filter(has_text="Python 3").first.click()
    expect(lab.notebook(page).locator(".jp-CodeCell")).to_have_count(1)
    lab.wait_for_kernel(page)
    session.mark("notebook")
    session.shot("04-notebook.png")
    try:
        yield session
    finally:
        context.close()


def test_a_first_query_shows_a_table(ada: Session) -> None:
    cell = lab.run_cell(ada.page, FIRST_QUERY)
    table = cell.locator(".jp-OutputArea-output table")
    expect(table).to_be_visible()
    ada.mark("first result")
    ada.shot("05-first-result.png")
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    assert "gender_concept_id" in headers, headers
    assert "n" in headers, headers
    assert table.locator("tbody tr").count() >= 2  # men and women at least
    _write_timings(ada)


def _write_timings(ada: Session) -> None:
    """Seconds from submitting the login form, to each step (never asserted)."""
    start = ada.marks["submitted"]
    steps = {step: round(at - start, 1) for step, at in ada.marks.items() if step != "submitted"}
    timings = {
        "cold_login_to_first_result_s": steps["first result"],
        "from_login_submitted_s": steps,
        "note": "wall-clock seconds from submitting the login form; the spawn is included",
    }
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")


def test_an_out_of_scope_column_is_refused_in_one_line(ada: Session) -> None:
    cell = lab.run_cell(ada.page, OUT_OF_SCOPE)
    ada.shot("06-refusal.png")
    text = lab.output_text(cell).strip()
    assert len(text.splitlines()) == 1, text
    assert text.startswith("ScopeViolation: ["), text
    assert RULE_ID.search(text), text
    assert "Traceback" not in text
    assert cell.locator(".jp-OutputArea-output table").count() == 0


def test_a_node_data_file_is_out_of_the_servers_reach(ada: Session, workbench: Workbench) -> None:
    data_file = sorted((workbench.dir / "data").rglob("*.duckdb"))[0]
    cell = lab.run_cell(ada.page, f"open({str(data_file)!r}, 'rb').read(16)")
    ada.shot("07-data-file.png")
    text = lab.output_text(cell)
    assert "PermissionError" in text, text
    assert "Permission denied" in text, text


def test_no_menu_offers_a_download(ada: Session) -> None:
    page = ada.page
    lab.save(page, "browser-test.ipynb")
    file_menu = lab.open_menu(page, "File")
    export = lab.open_submenu(page, "Save and Export Notebook As")
    ada.shot("08-file-menu.png")
    lab.close_menus(page)
    assert file_menu, "the File menu did not open"
    assert not [item for item in file_menu + export if "download" in item.lower()], file_menu

    page.locator("#filebrowser .jp-DirListing-item", has_text=".ipynb").first.click(button="right")
    context_menu = lab.labels(page.locator(".lm-Menu").last)
    ada.shot("09-context-menu.png")
    lab.close_menus(page)
    assert "Rename" in context_menu, context_menu  # the file browser's own menu
    assert not [item for item in context_menu if "download" in item.lower()], context_menu


def test_a_download_url_is_refused(ada: Session, workbench: Workbench) -> None:
    server = f"{workbench.url}user/ada/"
    listing = ada.context.request.get(f"{server}api/contents")
    assert listing.status == 200, listing.text()[:300]
    names = [item["name"] for item in listing.json()["content"] if item["type"] == "notebook"]
    assert names, listing.json()
    url = f"{server}files/{names[0]}?download=1"
    answer = ada.context.request.get(url, max_redirects=0)
    assert answer.status == 403, (answer.status, answer.headers)
    assert "attachment" not in answer.headers.get("content-disposition", "")
    tab = ada.context.new_page()
    tab.goto(url)
    tab.screenshot(path=ARTIFACTS / "10-download-refused.png")
    tab.close()


def test_the_server_starts_again_after_a_kernel_has_run(ada: Session, workbench: Workbench) -> None:
    hub = f"{workbench.url}hub/api/users/ada"
    stopped = httpx.delete(f"{hub}/server", headers=workbench.headers("ada"), timeout=120)
    assert stopped.status_code in (202, 204), stopped.text
    deadline = time.monotonic() + 120
    while httpx.get(hub, headers=workbench.headers("ada"), timeout=30).json()["servers"]:
        assert time.monotonic() < deadline, "ada's server did not stop"
        time.sleep(1)
    page = ada.page
    page.goto(f"{workbench.url}hub/spawn")
    page.locator("select[name=project]").select_option(PROJECT)
    page.locator("#spawn_form [type=submit]").click()
    try:
        lab.wait_for_lab(page, SPAWN_SECONDS)
    finally:
        ada.shot("11-restart.png")


def test_a_researcher_without_a_project_gets_no_server(
    workbench: Workbench, chromium: Browser
) -> None:
    context = _new_context(chromium)
    page = context.new_page()
    try:
        _log_in_with_a_fresh_code(page, workbench, "tom")
        page.goto(f"{workbench.url}hub/spawn")
        page.screenshot(path=ARTIFACTS / "12-tom-no-server.png")
        expect(page.locator("body")).to_contain_text("No notebook server")
        said = page.locator("body").inner_text().lower()
        assert said.count("apply to the access committee") == 1, said  # said once, not twice
        link = page.locator(f"a[href='{workbench.service('committee')}']")
        expect(link).to_have_count(1)
        link.click()
        page.wait_for_url(f"{workbench.service('committee')}**")
        expect(page.locator("body")).to_contain_text("Signed in as tom")
        page.screenshot(path=ARTIFACTS / "13-tom-committee.png")
    finally:
        context.close()
    hub = httpx.get(
        f"{workbench.url}hub/api/users/tom", headers=workbench.headers("tom"), timeout=30
    )
    assert hub.status_code == 200, hub.text
    assert hub.json()["servers"] == {}


def _log_in_with_a_fresh_code(page: Page, workbench: Workbench, name: str) -> None:
    """Log in as ``name``, leaving the current one-time code to other tests.

    The hub accepts the previous 30 s step's code too, so the previous one is tried first;
    if a later step's code was already used (another test logged in as ``name``), the
    next step's code is waited for."""
    totp = pyotp.TOTP(workbench.user(name)["totp_secret"])
    password = workbench.user(name)["password"]
    for attempt in ("previous", "next"):
        if attempt == "previous":
            code = totp.at(time.time() - 30)
        else:
            time.sleep(30 - time.time() % 30 + 1)
            code = workbench.code(name)
        lab.fill_login(page, workbench.url, name, password, code)
        lab.submit_login(page)
        page.wait_for_load_state()
        if "/hub/login" not in page.url:
            return
    pytest.fail(f"{name} could not log in: {page.url}\n{page.locator('body').inner_text()}")
