"""The whole airlock flow in headless Chromium, through the pages only.

A researcher creates and submits a request, an output checker returns it, the researcher
replaces the table and resubmits, two checkers approve, one releases and the researcher
downloads. The app runs under uvicorn on a loopback port for the module; a browser context
per person signs in with a test-only cookie (the product signs in through the hub's OAuth).
Each page is saved as a screenshot in ``test-artifacts/airlock/``.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import Request
from playwright import sync_api

from airlock.app import create_app
from airlock.workflow import State
from sde.settings import Settings
from tests.airlock.http import PREFIX
from tests.airlock.world import PEOPLE, World, make_world

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "airlock"
COOKIE = "airlock-test-user"
#: 4 persons in decile 1: under the threshold of 10, so the automatic checks flag it.
FIRST = b"decile,persons\n1,4\n2,135\n3,150\n4,160\n5,170\n"
ROUNDED = b"decile,persons\n1,0\n2,135\n3,150\n4,160\n5,170\n"


class CookieUser:
    """Test-only: the user named by a plain cookie (never in the product)."""

    async def __call__(self, request: Request) -> str | None:
        name = request.cookies.get(COOKIE)
        return name if name in PEOPLE else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _figure() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2.5), dpi=80)
    ax = fig.add_subplot()
    ax.bar(["2", "3", "4", "5"], [135, 150, 160, 170], color="#005eb8")
    ax.set_xlabel("IMD decile")
    ax.set_ylabel("persons")
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    root = tmp_path_factory.mktemp("airlock-browser")
    world = make_world(root)
    settings = Settings.model_validate(
        {
            "airlock_dir": world.airlock.files.root,
            "registry_url": str(world.store.engine.url),
            "airlock_max_file_mb": world.airlock.max_file_mb,
            "SDE_GATEWAY_PREFIX": PREFIX,
        }
    )
    app = create_app(settings, CookieUser(), store=world.store)
    app.state.airlock = world.airlock  # the world's airlock: its release hook, its clock
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


@pytest.fixture
def browser(chromium: object) -> object:
    """The run's one Chromium (tests/fixtures/browser.py)."""
    return chromium


class Person:
    """One person's browser context, signed in with the test cookie."""

    def __init__(self, browser: object, base: str, name: str) -> None:
        self.context = browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
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


def test_the_whole_flow(served: tuple[World, str], browser: object, tmp_path: Path) -> None:
    world, base = served
    table, figure, code = tmp_path / "by-decile.csv", tmp_path / "figure.png", tmp_path / "code.txt"
    table.write_bytes(FIRST)
    figure.write_bytes(_figure())
    code.write_bytes(b"counts = cohort.groupby('imd_decile').size()\n")
    ada, olu, pia = (Person(browser, base, n) for n in ("ada", "olu", "pia"))
    for old in ARTIFACTS.glob("*.png"):  # this test's own screenshots of an earlier run
        old.unlink()

    # The researcher starts a request, adds a group of files, describes it and submits it.
    ada.goto()
    sync_api.expect(ada.page.get_by_role("heading", level=1)).to_have_text("My release requests")
    ada.shot("01-researcher-home")
    ada.page.get_by_role("link", name="Start a new request").click()
    ada.page.get_by_label("Project").select_option("htn")
    ada.shot("02-new-request")
    ada.button("Create the request")
    ada.ok("Your request was created")
    rid = int(ada.page.url.split("/requests/")[1].split("?")[0])
    ada.page.get_by_label("Group name").fill("tables")
    ada.page.locator("#new-files").set_input_files([str(table), str(figure)])
    ada.button("Add the group")
    add = ada.page.locator("form", has=ada.page.locator("#files-1"))
    add.get_by_label("Files").set_input_files(str(code))
    add.get_by_label("Supporting (for the checkers only)").check()
    ada.button("Add files to tables")
    ada.button("Submit for review")  # no context yet: refused, with the rule, on the page
    sync_api.expect(ada.page.get_by_role("alert")).to_contain_text("[airlock.group-incomplete]")
    ada.shot("03-refused-submit")
    ada.page.get_by_label("Context").fill("Persons with hypertension by IMD decile, 2019-2023")
    ada.page.get_by_label("Disclosure controls applied").fill("Counts below 10 suppressed")
    ada.button("Save context and controls of tables")
    ada.ok("context and controls were saved")
    ada.shot("04-draft-with-files")
    ada.button("Submit for review")
    ada.ok("Your request was submitted")
    assert world.airlock.get("ada", rid)["state"] == State.SUBMITTED
    ada.shot("05-submitted-researcher")

    # An output checker finds it in the queue, sees the flagged cell and returns it.
    olu.goto("queue")
    row = olu.page.get_by_role("row").filter(has_text=f"Request {rid}")
    sync_api.expect(row).to_contain_text("1 fail")
    olu.shot("06-checker-queue")
    olu.page.get_by_role("link", name=f"Request {rid}").click()
    olu.shot("07-checker-request")
    olu.page.get_by_role("link", name="by-decile.csv").click()
    flagged = olu.page.locator("td.flag-fail")
    sync_api.expect(flagged).to_have_count(1)
    sync_api.expect(flagged).to_contain_text("4")
    sync_api.expect(olu.page.get_by_role("heading", name="Flags")).to_be_visible()
    sync_api.expect(olu.page.get_by_role("heading", name="Report")).to_be_visible()
    olu.shot("08-checker-file-flagged")
    olu.button("Request changes")
    olu.ok("Your vote was recorded")
    olu.page.get_by_role("link", name=f"Request {rid}").click()
    olu.page.get_by_label("Return to the author: what should change?").fill(
        "Decile 1 has 4 persons: round every count to 5 (or suppress it) and resubmit."
    )
    olu.button("Return the request")
    olu.ok("returned to its author")
    assert world.airlock.get("ada", rid)["state"] == State.RETURNED
    olu.shot("09-checker-returned")

    # The researcher reads the comment, replaces the table and resubmits.
    ada.goto(f"requests/{rid}")
    sync_api.expect(ada.page.get_by_role("main")).to_contain_text("round every count to 5")
    ada.shot("10-returned-researcher")
    table.write_bytes(ROUNDED)
    ada.page.locator("#files-1").set_input_files(str(table))
    ada.button("Add files to tables")
    ada.page.get_by_label("Disclosure controls applied").fill("Counts below 10 set to 0")
    ada.button("Save context and controls of tables")
    ada.page.get_by_label("Add a comment").fill("Decile 1 is now 0 (suppressed).")
    ada.button("Add comment")
    ada.button("Submit again")
    ada.ok("Your request was submitted")
    assert world.airlock.get("ada", rid)["turn"] == 2
    ada.shot("11-resubmitted-researcher")

    # Two checkers approve every output file and submit their reviews; one releases.
    for checker in (olu, pia):
        checker.goto(f"requests/{rid}")
        checker.button("Approve by-decile.csv")
        checker.ok("Your vote was recorded")
        checker.button("Approve figure.png")
        checker.button("Submit your review")
        checker.ok("Your review was submitted")
    olu.shot("12-first-review")
    sync_api.expect(pia.page.get_by_role("main")).to_contain_text("reviewed")
    pia.shot("13-reviewed")
    pia.button("Release the files")
    pia.ok("The request was released")
    assert world.airlock.get("ada", rid)["state"] == State.RELEASED
    pia.shot("14-released-checker")

    # The researcher downloads the released table.
    ada.goto(f"requests/{rid}")
    sync_api.expect(ada.page.get_by_role("main")).to_contain_text("Released")
    ada.shot("15-released-researcher")
    with ada.page.expect_download() as download:
        ada.page.get_by_role("link", name="Download by-decile.csv").click()
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    assert saved.read_bytes() == ROUNDED
    ada.goto()
    ada.shot("16-researcher-home-after")
