"""The live view and the quest's debugger in the browser, against the real server.

A test key is created from the quest; a refused request turns the quest's wait into an
explanation; events and refusals appear on the live page without a reload; test events are
cleared in one click.
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.flows import add_site, sign_up

pytestmark = pytest.mark.e2e

EVENT = {
    "event_name": "success",
    "name": "paid-customer",
    "page_path": "/checkout/success",
    "success_value": 9.99,
    "success_user_id": "user_42",
    "properties": {"plan": "starter"},
}
TEST_TOKEN_RE = re.compile(r"^dl_test_[A-Za-z0-9]{12}_[A-Za-z0-9]{38}$")


def _post(live_server, token: str, body: dict) -> int:
    """Send one event from outside the browser, as a backend does; return the status."""
    return requests.post(
        f"{live_server.url}/event",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).status_code


def test_test_key_debugger_and_live_view(page, new_context, live_server, screenshot):
    sign_up(page, "dev@example.org")
    site_id = add_site(page, "app.example.com")
    page.goto(f"/sites/{site_id}/quests/server-events")
    page.get_by_label("Key name").fill("Trying it")
    page.get_by_role("button", name="Create test key").click()
    expect(page.get_by_role("heading", name="Your new test key")).to_be_visible()
    token = page.locator("#new-token").inner_text().strip()
    assert TEST_TOKEN_RE.fullmatch(token), token
    expect(page.locator('[data-runtime="curl"] pre code')).to_contain_text(token)

    # A refused request: the wait explains it instead of waiting forever.
    assert _post(live_server, token, {**EVENT, "success_value": "9.99"}) == 400
    waiting = page.locator("#first-event")
    expect(waiting).to_contain_text(
        "We received a request from this key, but it was refused: success_value must be a number"
    )
    expect(waiting.locator("code")).to_have_text("success_value")
    screenshot(page, "quest-refused")

    # The live page, open beside it, shows events and refusals as they arrive.
    live = new_context().new_page()
    live.context.add_cookies(page.context.cookies())
    live.goto(f"/sites/{site_id}/live")
    rows = live.locator("[data-live-rows] tr")
    refused = live.locator("[data-live-rows] tr.is-refused")
    events = live.locator("[data-live-rows] tr.is-event")
    expect(refused).to_have_count(1)
    expect(refused.first).to_contain_text("refused 400")
    expect(events).to_have_count(0)
    assert _post(live_server, token, EVENT) == 204
    # Within 2 s of the event (1.5 s polling), without a reload.
    expect(events).to_have_count(1, timeout=3000)
    expect(rows.first).to_have_class(re.compile(r"\bis-event\b"))
    expect(events.first).to_contain_text("success · paid-customer")
    expect(events.first).to_contain_text("/checkout/success")
    expect(events.first).to_contain_text("user_42")
    expect(events.first).to_contain_text("Trying it (test)")
    expect(events.first.locator(".badge-test")).to_have_text("test")
    assert _post(live_server, token, {"event_name": "click"}) == 400
    expect(refused).to_have_count(2, timeout=3000)
    expect(rows.first).to_have_class(re.compile(r"\bis-refused\b"))
    expect(rows.first).to_contain_text("page_path")
    screenshot(live, "live-view", readme="live-view.png")

    # The quest page completes (a test event proves the integration works).
    expect(waiting).to_contain_text("First event received")

    # Refused only.
    live.get_by_label("Refused only").check()
    expect(rows).to_have_count(2)

    # One click clears the test events.
    live.get_by_role("button", name="Clear test events").click()
    expect(live.get_by_text("Deleted 1 test event.")).to_be_visible()
