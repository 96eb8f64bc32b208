"""Where visitors come from, end to end in Chromium: a visitor lands on a customer's page
from a search result with campaign parameters and an ad click id; the script sends the
referrer (without its query), the campaign, the click id's name and the screen width with
its page views, and the owner's breakdown.json shows the visit's source, channel, campaign,
device and browser, the later page views and a success of the same visit included."""

from __future__ import annotations

import pytest

from tests.e2e.flows import add_site, sign_up
from tests.e2e.test_browser_sdk import (
    page_server,  # noqa: F401 - the fixture, used by name
    visitor_page,
    wait_for_events,
)

pytestmark = pytest.mark.e2e

LANDING = "/?utm_source=newsletter&utm_medium=email&utm_campaign=spring%20launch&gclid=abc123"


def breakdown(page, site_id: int, dimension: str) -> list[tuple]:
    """breakdown.json's (value, visitors, pageviews, conversions) of today, as the owner."""
    answer = page.request.get(f"/sites/{site_id}/breakdown.json?period=today&dimension={dimension}")
    assert answer.status == 200, answer.text()
    return [
        (row["value"], row["visitors"], row["pageviews"], row["conversions"])
        for row in answer.json()["rows"]
    ]


def test_a_visit_from_a_campaign_is_reported_by_source_channel_and_device(
    browser,
    page,
    live_server,
    page_server,  # noqa: F811
):
    sign_up(page, "mira@example.org")
    site_id = add_site(page, "shop.example.com")
    snippet = live_server.cli("sites", "snippet", "shop.example.com").strip()
    shop = page_server(snippet)
    live_server.cli("sites", "set", "shop.example.com", "--allowed-origin", shop)

    context, visitor = visitor_page(browser)
    try:
        with visitor.expect_request(lambda r: "/collect" in r.url) as sent:
            visitor.goto(shop + LANDING, referer="https://www.google.com/search?q=shoes")
        body = sent.value.post_data_json
        assert body["referrer"] == "https://www.google.com/search"  # never the query
        assert body["utm"] == {
            "source": "newsletter",
            "medium": "email",
            "campaign": "spring launch",
        }
        assert body["click_ids"] == ["gclid"]
        assert isinstance(body["screen_width"], int) and body["screen_width"] > 0
        visitor.evaluate("history.pushState({}, '', '/pricing')")
        visitor.evaluate("datalook.success('paid-customer', {value: 5})")
        assert len(wait_for_events(live_server, "shop.example.com", 3)) == 3
    finally:
        context.close()

    assert breakdown(page, site_id, "source") == [("Newsletter", 1, 2, 1)]
    assert breakdown(page, site_id, "channel") == [("Email", 1, 2, 1)]
    assert breakdown(page, site_id, "campaign") == [("spring launch", 1, 2, 1)]
    assert breakdown(page, site_id, "referrer") == [("https://www.google.com/search", 1, 2, 1)]
    assert breakdown(page, site_id, "device") == [("desktop", 1, 2, 1)]
    assert breakdown(page, site_id, "browser") == [("Chrome", 1, 2, 1)]
    assert breakdown(page, site_id, "entry_page") == [("/", 1, 2, 1)]
    filtered = page.request.get(
        f"/sites/{site_id}/stats.json?period=today&filter=channel==Email&filter=page=~pric"
    ).json()
    assert (filtered["totals"]["pageviews"], filtered["totals"]["visitors"]) == (1, 1)
