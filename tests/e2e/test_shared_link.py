"""A shared link in a real browser: the owner creates it with a password, and a visitor
without an account types the password and reads the dashboard, changing its date range."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.flows import add_site, create_key, sign_up
from tests.e2e.test_pages import AXE, AXE_RUN, FAILING_IMPACTS

pytestmark = pytest.mark.e2e

EVENT = {
    "event_name": "success",
    "name": "paid-customer",
    "page_path": "/checkout/success",
    "success_value": 42,
    "success_user_id": "visitor-1",
}


def test_a_visitor_opens_a_protected_shared_link(browser, new_context, live_server, screenshot):
    owner = new_context().new_page()
    sign_up(owner, "sharer@example.com")
    site_id = add_site(owner, "shared.example.com")
    token, _ = create_key(owner, site_id, "Server")
    sent = requests.post(
        f"{live_server.url}/event",
        json=EVENT,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert sent.status_code == 204

    owner.goto(f"/sites/{site_id}/")
    owner.get_by_role("link", name="Share").click()
    owner.get_by_label("Name").fill("Investors")
    owner.get_by_label("Password (optional)").fill("open sesame please")
    owner.get_by_role("button", name="Create link").click()
    expect(owner.get_by_role("heading", name="Your shared link")).to_be_visible()
    url = owner.locator("#new-token").inner_text().strip()
    assert re.fullmatch(r"https?://[^/]+/share/[A-Za-z0-9_-]{43}", url)

    visitor = new_context().new_page()
    visitor.goto(url)
    expect(visitor.get_by_role("heading", name="This dashboard is protected")).to_be_visible()
    visitor.get_by_label("Password").fill("not it")
    visitor.get_by_role("button", name="Open the dashboard").click()
    expect(visitor.get_by_text("That password is not right.")).to_be_visible()
    visitor.get_by_label("Password").fill("open sesame please")
    visitor.get_by_role("button", name="Open the dashboard").click()
    expect(visitor.get_by_role("heading", name="shared.example.com")).to_be_visible()
    expect(visitor.locator('[data-figure="conversions"]')).to_have_text("1")
    # Nothing of the site's people: no navigation, keys, live view or log-in bar.
    for name in ("API keys", "Live", "Report settings", "Log out", "Dashboard"):
        expect(visitor.get_by_role("link", name=name, exact=True)).to_have_count(0)
    visitor.get_by_role("link", name="Last 7 days").click()
    expect(visitor).to_have_url(re.compile(r"/share/[A-Za-z0-9_-]{43}\?period=7d"))
    expect(visitor.locator("[data-range-label]")).to_have_text("Last 7 days")
    expect(visitor.locator('[data-figure="conversions"]')).to_have_text("1")
    screenshot(visitor, "shared-dashboard")

    # Accessible like every other page (axe-core, injected past the page's CSP).
    if AXE.exists():
        checker = browser.new_context(base_url=live_server.url, bypass_csp=True)
        checker.add_cookies(visitor.context.cookies())
        page = checker.new_page()
        page.goto(visitor.url)
        page.add_script_tag(path=str(AXE))
        assert page.evaluate(AXE_RUN, list(FAILING_IMPACTS)) == []
        checker.close()
