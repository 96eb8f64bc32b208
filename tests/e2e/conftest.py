"""Browser fixtures: one headless chromium per session, one context per test, screenshots.

The browser is Debian's chromium (never a downloaded one). Where it is missing the tests
skip, unless DATALOOK_REQUIRE_ALL=1 makes that a failure. DATALOOK_UPDATE_SCREENSHOTS=1
also writes the README images under docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
README_SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}
# Actions and assertions wait this long (ms) before failing; the live wait polls every 2 s.
TIMEOUT_MS = 15_000


def require_or_skip(reason: str) -> None:
    """Skip for a missing browser, or fail when CI requires every test to run."""
    if os.environ.get("DATALOOK_REQUIRE_ALL") == "1":
        pytest.fail(f"DATALOOK_REQUIRE_ALL=1 and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """A headless Debian chromium, shared by every browser test of the session."""
    if not CHROMIUM.exists():
        require_or_skip(f"{CHROMIUM} is missing (install Debian's chromium package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_or_skip("the playwright Python package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser, live_server) -> Iterator[Callable]:
    """Open browser contexts on the live server (clipboard allowed); closed after the test."""
    contexts = []

    def open_context():
        context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context):
    """A page in a fresh browser context: a visitor with no cookies."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    return new_context().new_page()


@pytest.fixture
def screenshot(request) -> Callable:
    """Save a screenshot under tests/e2e/screenshots/ (and docs/screenshots/ when asked)."""
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(page, name: str, readme: str | None = None) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{test_name}--{name}.png"
        # A whole long page (the reports reference) takes a while to paint on a loaded machine:
        # an availability bound, not a speed check.
        page.screenshot(path=str(path), full_page=True, timeout=90_000)
        if readme and os.environ.get("DATALOOK_UPDATE_SCREENSHOTS") == "1":
            README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(README_SCREENSHOTS / readme), animations="disabled")
        return path

    return take
