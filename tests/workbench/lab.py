"""Driving the hub's pages and JupyterLab in a browser, as a researcher would.

Small steps over a Playwright ``Page``: log in, run a notebook cell and wait for it, read
the labels of an open menu. The selectors are JupyterLab 4's own class names.
"""

from __future__ import annotations

import contextlib
import re

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

#: A cell's prompt once its run has finished (``[*]:`` while it runs).
DONE_PROMPT = re.compile(r"^\[\d+\]:$")
#: A cell's prompt before it has run.
IDLE_PROMPT = re.compile(r"^\[\s*\]:\s*$")
#: A kernel start and a federated query on a loaded 2-core machine.
CELL_SECONDS = 180


def fill_login(page: Page, url: str, name: str, password: str, code: str) -> None:
    """Open the hub's login page and fill in the three fields (not submitted)."""
    page.goto(f"{url}hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.fill("input[name=otp]", code)


def submit_login(page: Page) -> None:
    page.click("#login_submit")


def wait_for_lab(page: Page, seconds: float) -> Locator:
    """Wait until JupyterLab has loaded (the spawn included); its launcher's notebook
    cards, the launcher opened if the lab restored other tabs."""
    cards = page.locator(".jp-LauncherCard[data-category=Notebook]")
    loaded = page.locator(".jp-LabShell .lm-MenuBar-itemLabel").first
    failed = page.locator(".progress-bar.bg-danger")
    loaded.or_(failed).first.wait_for(timeout=seconds * 1000)
    if failed.count():
        raise AssertionError(f"the spawn failed: {page.locator('#progress-message').inner_text()}")
    try:
        cards.first.wait_for(timeout=10_000)
    except PlaywrightTimeout:
        page.get_by_role("button", name=re.compile("^New Launcher")).first.click()
        cards.first.wait_for()
    return cards


def notebook(page: Page) -> Locator:
    """The notebook in the lab's current main-area tab."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")


def run_cell(page: Page, code: str) -> Locator:
    """Type ``code`` into the notebook's last cell, run it (Shift+Enter) and wait until
    it has finished; the cell it ran in."""
    cells = notebook(page).locator(".jp-CodeCell")
    cell = cells.nth(cells.count() - 1)
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    # insert_text, not type: no key events, so the editor closes no brackets of its own
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputPrompt")
    try:
        expect(prompt).not_to_have_text(IDLE_PROMPT, timeout=15_000)
    except AssertionError:
        # The lab moved on without running it: its kernel connection was not ready yet.
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
    expect(prompt).to_have_text(DONE_PROMPT, timeout=CELL_SECONDS * 1000)
    return cell


def output_text(cell: Locator) -> str:
    return cell.locator(".jp-OutputArea").inner_text()


def save(page: Page, name: str) -> None:
    """Save the current notebook, naming it ``name`` if the lab asks for a name (it does
    on a new notebook's first save)."""
    page.keyboard.press("Control+s")
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=5000)
    except PlaywrightTimeout:
        return
    dialog.locator("input[type=text]").fill(name)
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)


def dismiss_news(page: Page) -> None:
    """Say no to the lab's offer of Jupyter news, if it shows (it hides part of the
    screenshots)."""
    answer = page.locator(".Toastify__toast", has_text="news").get_by_role(
        "button", name="No", exact=True
    )
    if answer.count():
        with contextlib.suppress(PlaywrightTimeout):  # it may go by itself
            answer.first.click(timeout=5000)


def open_menu(page: Page, title: str) -> list[str]:
    """Open the menu bar's menu ``title``; the labels of its items."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{title}$")).click()
    menu = page.locator(".lm-Menu").last
    expect(menu).to_be_visible()
    return labels(menu)


def labels(menu: Locator) -> list[str]:
    return [text.strip() for text in menu.locator(".lm-Menu-itemLabel").all_inner_texts()]


def open_submenu(page: Page, label: str) -> list[str]:
    """Hover the open menu's item ``label``; the labels of the submenu it opens."""
    before = page.locator(".lm-Menu").count()
    page.locator(".lm-Menu-item", has_text=label).last.hover()
    page.wait_for_timeout(1000)
    if page.locator(".lm-Menu").count() == before:
        return []
    return labels(page.locator(".lm-Menu").last)


def close_menus(page: Page) -> None:
    for _ in range(3):
        page.keyboard.press("Escape")
    expect(page.locator(".lm-Menu")).to_have_count(0)


def wait_for_kernel(page: Page) -> None:
    """Wait until the current notebook's kernel has started and is idle."""
    status = page.get_by_role("contentinfo").get_by_role("button", name=re.compile(r"\| Idle$"))
    expect(status).to_be_visible(timeout=CELL_SECONDS * 1000)
