"""Take the README's pictures of the dashboard at 1280 and 390 px from a seeded instance.

Usage: .venv/bin/python scripts/dashboard_screenshots.py [--events N] [--out DIR]

Starts a private server (as `make run` does) on a temporary instance folder, creates an
owner and a site with the CLI, seeds 60 days of demo events (`flask demo seed`), logs in
with Debian's Chromium through Playwright and writes dashboard-1280.png and
dashboard-390.png (the whole page) into docs/screenshots/. Prints each page's height.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import LiveServer  # noqa: E402 - the repository root goes on the path first

EMAIL = "owner@shop.example"
PASSWORD = secrets.token_urlsafe(18)  # a throw-away instance: a new password each run
DOMAIN = "shop.example"
CHROMIUM = "/usr/bin/chromium"


def seeded_server(instance: Path, events: int) -> tuple[LiveServer, int]:
    """A running server with an owner, a site and `events` demo events over 60 days (the
    last 30 days shown, the 30 before them as the previous period)."""
    server = LiveServer(instance, workers=2)
    server.start()
    server.cli("users", "create", EMAIL, "--password", PASSWORD)
    server.cli("sites", "create", DOMAIN, "--owner", EMAIL)
    server.cli("demo", "seed", "--site", DOMAIN, "--events", str(events), "--days", "60")
    return server, 1


def log_in(page) -> None:
    """Log in through the form."""
    page.goto("/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/sites/")


def main() -> None:
    """Seed, browse, and write the pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        server, site_id = seeded_server(Path(folder) / "instance", options.events)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                context = browser.new_context(
                    base_url=server.url, viewport={"width": 1280, "height": 900}
                )
                page = context.new_page()
                log_in(page)
                for width, height in ((1280, 900), (390, 844)):
                    page.set_viewport_size({"width": width, "height": height})
                    page.goto(f"/sites/{site_id}/?period=30d")
                    # A large range reads its panels after the page: wait for them.
                    page.locator('[data-panel="pages"]').wait_for()
                    # Revenue by source is filled by a script from attribution.json.
                    page.locator("#revenue-by-source tbody tr").first.wait_for()
                    path = options.out / f"dashboard-{width}.png"
                    page.screenshot(path=str(path), full_page=True, animations="disabled")
                    tall = page.evaluate("document.documentElement.scrollHeight")
                    print(f"{path}: {width} x {tall} px")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
