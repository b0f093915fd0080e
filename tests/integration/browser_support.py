"""Headless Chromium for browser tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download needs the internet; the system browser that
scripts/setup.sh installs is used instead (``executable_path``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
)


def chromium_path() -> str:
    """The system Chromium; a clear error when setup has not installed it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("chromium is missing: run scripts/setup.sh (it installs Debian's chromium)")


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A headless browser for one test module; closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()
