"""One headless Chromium per test run, for the browser tests of the workbench.

The system's Chromium (``/usr/bin/chromium``) driven by Playwright's sync API; Playwright's
own browser downloads are never used. Each test opens its own browser context (its own
cookies), so people logged in by one test never leak into another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed at the end of the run."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install --no-install-recommends chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()
