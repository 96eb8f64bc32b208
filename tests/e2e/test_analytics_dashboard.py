"""The analytics dashboard in a browser: events sent to the real server show on the page
with the same figures as stats.json, and the page fits a 390 px wide screen."""

from __future__ import annotations

import itertools
import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.flows import add_site, create_key, sign_up

pytestmark = pytest.mark.e2e

EVENTS = [
    {
        "event_name": "success",
        "name": "paid-customer",
        "success_user_id": "alice",
        "success_value": 19.99,
        "event_id": "order-1",
    },
    {
        "event_name": "success",
        "name": "paid-customer",
        "success_user_id": "alice",
        "success_value": 19.99,
        "event_id": "order-1",
    },  # a retry: counted once
    {
        "event_name": "success",
        "name": "paid-customer",
        "success_user_id": "bob",
        "success_value": 5.01,
    },
    {"event_name": "pageview", "success_user_id": "carol", "properties": {"plan": "pro"}},
    {"event_name": "click"},
]


def test_dashboard_shows_what_was_sent(page, live_server, screenshot):
    sign_up(page, "analytics@example.com")
    site_id = add_site(page, "shop.example.com")
    token, _ = create_key(page, site_id, "Backend")
    for event in EVENTS:
        answer = requests.post(
            f"{live_server.url}/event",
            json={"page_path": "/checkout/success", **event},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 204, answer.text

    page.goto(f"/sites/{site_id}/?period=today")
    expect(page.get_by_role("heading", name="Totals")).to_be_attached()
    figure = lambda key: page.locator(f'[data-figure="{key}"]').inner_text()  # noqa: E731
    assert figure("conversions") == "2"
    assert figure("visitors") == "3"
    assert figure("revenue") == "$25.00"
    assert figure("events") == "4"
    stats = page.request.get(f"/sites/{site_id}/stats.json?period=today").json()
    assert stats["totals"]["conversions"] == 2 and stats["totals"]["visitors"] == 3
    assert stats["totals"]["revenue"] == "25.00" and stats["totals"]["events"] == 4
    row = page.locator('[data-panel="goals"] tr[data-value="paid-customer"]')
    assert row.locator('[data-col="conversions"]').inner_text() == "2"
    assert row.locator('[data-col="visitors"]').inner_text() == "2"
    expect(page.get_by_text("25.0% of events have no visitor id")).to_be_visible()

    # The range is in the URL: the range links and the chart metric keep it.
    page.get_by_role("link", name="Revenue", exact=True).click()
    expect(page).to_have_url(re.compile(r"metric=revenue"))
    expect(page).to_have_url(re.compile(r"period=today"))
    expect(page.get_by_role("heading", name="Revenue per hour")).to_be_visible()

    # A phone-sized screen: nothing wider than the viewport; tables scroll in their boxes.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(  # what sticks out, should the check fail
        "[...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > 391).slice(0, 5)"
        ".map(e => e.tagName + '.' + e.className)"
    )
    assert width <= 390, (width, wide)
    boxes = page.locator(".scroll-box")
    assert boxes.count() >= 1
    assert boxes.first.get_attribute("tabindex") == "0"
    headings = page.evaluate(
        "[...document.querySelectorAll('h1,h2,h3')].map(h => Number(h.tagName[1]))"
    )
    assert headings[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(headings))
    screenshot(page, "dashboard-390")
