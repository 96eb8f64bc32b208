"""The browser SDK in Chromium: a page on another origin loads /js/datalook.js from the real
server and its pageviews, clicks, successes and identify arrive exactly once.

The test pages are served by a second and a third local HTTP server (other ports: other
origins). Events are read back through `flask events export`.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import TIMEOUT_MS, VIEWPORT
from tests.e2e.flows import add_site, sign_up
from tests.live import free_port

pytestmark = pytest.mark.e2e

# An ordinary desktop Chrome: the headless browser's own agent says HeadlessChrome, a bot.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
{before}
{snippet}
</head><body>
<h1>Shop</h1>
<button data-datalook-click="signup-button"><span>Sign up</span></button>
<button id="unmarked">Not counted</button>
</body></html>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serve files without logging every request to stderr."""

    def log_message(self, *args) -> None:
        """Stay quiet."""


@pytest.fixture
def page_server(tmp_path) -> Iterator[Callable[[str], str]]:
    """Start static HTTP servers for test pages; each call serves one snippet on its origin."""
    servers = []

    def serve(snippet: str, before: str = "") -> str:
        root = tmp_path / f"pages{len(servers)}"
        root.mkdir()
        (root / "index.html").write_text(PAGE.format(snippet=snippet, before=before))
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def visitor_page(browser, user_agent: str | None = DESKTOP_CHROME):
    """A page in a fresh context, as a visitor of the customer's site."""
    options = {"viewport": VIEWPORT}
    if user_agent:
        options["user_agent"] = user_agent
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    return context, context.new_page()


def wait_for_events(live_server, domain: str, count: int, settle: float = 1.5) -> list[dict]:
    """Poll the export until `count` events are stored, then wait and read again (no extra)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if len(live_server.stored_events(domain)) >= count:
            break
        time.sleep(0.3)
    time.sleep(settle)  # a duplicate would arrive within this
    return live_server.stored_events(domain)


def summary(events: list[dict]) -> list[tuple]:
    """The facts compared: kind, name, path, user id, value (arrival order may vary)."""
    return sorted(
        (
            e["event_name"],
            e["name"] or "",
            e["page_path"],
            e["success_user_id"] or "",
            e["success_value"] or 0,
        )
        for e in events
    )


def test_quest_snippet_on_another_origin_sends_every_event_exactly_once(
    browser, page, live_server, page_server, screenshot
):
    # The owner opens the quest: the snippet comes pre-filled with the site key.
    sign_up(page, "lena@example.org")
    site_id = add_site(page, "shop.example.com")
    page.get_by_role("link", name="Add the browser snippet").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add the browser snippet")
    page.get_by_role("button", name="Copy snippet").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    snippet = page.evaluate("navigator.clipboard.readText()")
    assert snippet == page.locator("#browser-snippet").inner_text().strip()
    expect(page.get_by_role("button", name="Copy snippet")).to_be_visible()  # label restored
    assert 'data-site="dls_' in snippet and f"{live_server.url}/js/datalook.js?v=" in snippet
    shop = page_server(snippet)

    # The shop runs on another origin (a development server): the owner allows it.
    page.get_by_label("Origin").fill(shop)
    page.get_by_role("button", name="Allow origin").click()
    expect(page.get_by_text(f"{shop} may now send events.")).to_be_visible()
    expect(page.locator("#first-event")).to_contain_text("Waiting for your first page view")

    context, shop_page = visitor_page(browser)
    try:
        with shop_page.expect_response(lambda r: "/collect" in r.url) as first:
            shop_page.goto(shop + "/")
        assert first.value.status == 204
        # Two single-page-app navigations, and one that keeps the path (not a new pageview).
        shop_page.evaluate("history.pushState({}, '', '/pricing')")
        shop_page.evaluate("history.pushState({}, '', '/signup')")
        shop_page.evaluate("history.replaceState({}, '', '/signup?step=2')")
        shop_page.get_by_text("Sign up").click()  # inside the marked button
        shop_page.locator("#unmarked").click()
        shop_page.evaluate("datalook.identify('user_42')")
        shop_page.evaluate(
            "datalook.success('paid-customer',"
            " {value: 9.99, properties: {plan: 'pro', email: 'a@b.c'}})"
        )
        shop_page.go_back()  # back to /pricing: a new pageview of it
        expect(shop_page).to_have_url(shop + "/pricing")

        events = wait_for_events(live_server, "shop.example.com", 7)
    finally:
        context.close()

    assert summary(events) == sorted(
        [
            ("pageview", "", "/", "", 0),
            ("pageview", "", "/pricing", "", 0),
            ("pageview", "", "/signup", "", 0),
            ("click", "signup-button", "/signup", "", 0),
            ("custom", "identify", "/signup", "user_42", 0),
            ("success", "paid-customer", "/signup", "user_42", 9.99),
            ("pageview", "", "/pricing", "user_42", 0),
        ]
    )
    # The pages before identify() carry the day's cookieless id, or the user's once the fold
    # has applied the link that identify() made (the same day's id joins the user).
    (anonymous,) = {e["visitor_id"] for e in events if not e["success_user_id"]}
    assert anonymous.startswith("c:") or anonymous == "u:user_42", anonymous
    assert {e["visitor_id"] for e in events if e["success_user_id"]} == {"u:user_42"}
    (success,) = [e for e in events if e["event_name"] == "success"]
    assert success["properties"] == {"plan": "pro"}
    assert success["stripped_keys"] == ["email"]
    assert all(e["key_id"] is None for e in events)

    # The owner's waiting quest page noticed the first pageview by itself.
    expect(page.locator("#first-event")).to_contain_text("First event received")
    screenshot(page, "browser-quest-complete")
    page.goto(f"/sites/{site_id}/quests/")
    expect(page.locator(".quest-done")).to_contain_text("Add the browser snippet")


def _site_with_snippet(live_server, domain: str) -> str:
    """Create an owner and a site through the CLI; return the site's snippet."""
    live_server.cli("users", "create", f"owner@{domain}", "--password", "correct horse battery")
    live_server.cli("sites", "create", domain, "--owner", f"owner@{domain}")
    return live_server.cli("sites", "snippet", domain).strip()


def test_a_page_on_a_disallowed_origin_is_refused(browser, live_server, page_server):
    snippet = _site_with_snippet(live_server, "refused.example.com")
    elsewhere = page_server(snippet)  # never added to the site's origins
    context, shop_page = visitor_page(browser)
    try:
        with shop_page.expect_response(lambda r: "/collect" in r.url) as answer:
            shop_page.goto(elsewhere + "/")
        assert answer.value.status == 403
        assert answer.value.headers.get("access-control-allow-origin") is None
    finally:
        context.close()
    assert wait_for_events(live_server, "refused.example.com", 1, settle=0.5) == []


def test_a_headless_browser_is_not_counted(browser, live_server, page_server):
    snippet = _site_with_snippet(live_server, "headless.example.com")
    shop = page_server(snippet)
    live_server.cli("sites", "set", "headless.example.com", "--allowed-origin", shop)
    context, shop_page = visitor_page(browser, user_agent=None)  # says HeadlessChrome
    try:
        with shop_page.expect_response(lambda r: "/collect" in r.url) as answer:
            shop_page.goto(shop + "/")
        assert answer.value.status == 204
    finally:
        context.close()
    assert wait_for_events(live_server, "headless.example.com", 1, settle=0.5) == []


# Calls made before the deferred script has run wait in window.datalook.q.
QUEUE_STUB = """<script>
window.datalook = {q: [["identify", "user_7"], ["custom", "queued", {"source": "stub"}]]};
</script>"""


def test_without_sendbeacon_fetch_keepalive_delivers_and_queued_calls_run(
    browser, live_server, page_server
):
    snippet = _site_with_snippet(live_server, "fallback.example.com")
    shop = page_server(snippet, before=QUEUE_STUB)
    live_server.cli("sites", "set", "fallback.example.com", "--allowed-origin", shop)
    context, shop_page = visitor_page(browser)
    # A browser without navigator.sendBeacon: the script falls back to fetch(keepalive).
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'sendBeacon', {value: undefined})"
    )
    try:
        with shop_page.expect_response(lambda r: "/collect" in r.url) as first:
            shop_page.goto(shop + "/")
        assert first.value.request.resource_type == "fetch"
        assert first.value.status == 204
        assert first.value.headers["access-control-allow-origin"] == shop
        shop_page.evaluate("datalook.success('upgraded', {value: 20})")
        events = wait_for_events(live_server, "fallback.example.com", 4)
    finally:
        context.close()
    assert summary(events) == sorted(
        [
            ("pageview", "", "/", "", 0),
            ("custom", "identify", "/", "user_7", 0),
            ("custom", "queued", "/", "user_7", 0),
            ("success", "upgraded", "/", "user_7", 20),
        ]
    )
    (queued,) = [e for e in events if e["name"] == "queued"]
    assert queued["properties"] == {"source": "stub"}
