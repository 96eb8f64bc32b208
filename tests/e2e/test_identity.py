"""From the first visit to the confirmed payment, end to end in Chromium: an anonymous visit
from a newsletter (`/`, `/pricing`), a login page whose snippet carries `data-user-id`, and
the backend's `success` for that user; or the backend's success alone with the visitor's
forwarded address and User-Agent. The funnel `/` → `/pricing` → `paid-customer` converts for
one visitor, journeys show one session, attribution credits 49.00 to Newsletter (first and
last). With persistent visitor ids a visit of two days before joins the payment; with the
default cookieless ids it does not."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.flows import add_site, log_in, sign_up
from tests.e2e.test_browser_sdk import (
    DESKTOP_CHROME,
    page_server,  # noqa: F401 - the fixture, used by name
    visitor_page,
    wait_for_events,
)

pytestmark = pytest.mark.e2e

DOMAIN = "shop.example.com"
LANDING = "/?utm_source=newsletter&utm_medium=email"
# The login page: the page's path is /login when the script reads it.
AT_LOGIN = "<script>history.replaceState({}, '', '/login')</script>"
STEPS = [
    {"event_name": "pageview", "page_path": "/"},
    {"event_name": "pageview", "page_path": "/pricing"},
    {"event_name": "success", "name": "paid-customer"},
]


def owner_site(page, live_server, email: str) -> tuple[int, str]:
    """Sign up, add the site, make a live key; (site id, token)."""
    sign_up(page, email)
    site_id = add_site(page, DOMAIN)
    token = live_server.cli("keys", "create", "--site", DOMAIN, "--name", "backend").strip()
    return site_id, token


def shop_pages(live_server, page_server, user_id: str | None = None) -> tuple[str, str]:  # noqa: F811
    """The shop's landing page and its login page (with data-user-id), both allowed."""
    snippet = live_server.cli("sites", "snippet", DOMAIN).strip()
    landing = page_server(snippet)
    login = (
        page_server(
            snippet.replace("<script defer", f'<script data-user-id="{user_id}" defer'), AT_LOGIN
        )
        if user_id
        else None
    )
    for origin in filter(None, (landing, login)):
        live_server.cli("sites", "set", DOMAIN, "--allowed-origin", origin)
    return landing, login or ""


def anonymous_visit(visitor, landing: str) -> None:
    """Land from the newsletter, then read the pricing page."""
    visitor.goto(landing + LANDING)
    visitor.evaluate("history.pushState({}, '', '/pricing')")


def pay(live_server, token: str, context: dict | None = None) -> None:
    """The backend confirms the payment of user_42."""
    body = {"event_name": "success", "name": "paid-customer", "page_path": "/checkout"}
    body.update(success_user_id="user_42", success_value=49.00)
    if context:
        body["context"] = context
    answer = requests.post(
        live_server.event_url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 204, answer.text
    assert "DataLook-Visit-Not-Joined" not in answer.headers


def report(page, site_id: int, name: str, query: dict) -> dict:
    """A JSON report of the owner's site."""
    answer = page.request.get(f"/sites/{site_id}/{name}.json?{urlencode(query, doseq=True)}")
    assert answer.status == 200, answer.text()
    return answer.json()


def attributed(page, site_id: int, model: str, days: int = 0) -> dict:
    """attribution.json's rows by source: value -> revenue."""
    today = datetime.now(UTC).date()
    query = {"from": str(today - timedelta(days=days)), "to": str(today), "model": model}
    query.update(rule="paid-customer", dimension="source")
    rows = report(page, site_id, "attribution", query)["rows"]
    return {row["value"]: row["revenue"] for row in rows}


def assert_one_converted_visitor(page, site_id: int) -> None:
    """The funnel converts one visitor, journeys show one session, attribution credits
    49.00 to Newsletter (first and last)."""
    time.sleep(2.5)  # a link is applied once LINK_GRACE old
    query = {"period": "today", "step": [json.dumps(s) for s in STEPS], "window": "24h"}
    funnel = report(page, site_id, "funnel", query)
    assert [step["visitors"] for step in funnel["steps"]] == [1, 1, 1], funnel
    # Broken down by the source of the visit of step 1: the newsletter's.
    by_source = report(page, site_id, "funnel", {**query, "breakdown": "source"})["breakdown"]
    rows = [(r["value"], [s["visitors"] for s in r["steps"]]) for r in by_source["rows"]]
    assert rows == [("Newsletter", [1, 1, 1])], by_source
    journeys = report(page, site_id, "journeys", {"period": "today"})
    assert sum(row["sessions"] for row in journeys["journeys"]) == 1, journeys
    for model in ("first", "last"):
        assert attributed(page, site_id, model) == {"Newsletter": "49.00"}, model


def test_a_login_joins_the_anonymous_visit_to_the_backends_payment(
    browser,
    page,
    live_server,
    page_server,  # noqa: F811
):
    site_id, token = owner_site(page, live_server, "ines@example.org")
    landing, login = shop_pages(live_server, page_server, "user_42")
    context, visitor = visitor_page(browser)
    try:
        anonymous_visit(visitor, landing)
        visitor.goto(login)
        wait_for_events(live_server, DOMAIN, 3)
        # The script stored nothing in the browser: cookieless.
        assert visitor.evaluate("document.cookie + JSON.stringify(localStorage)") == "{}"
    finally:
        context.close()
    pay(live_server, token)
    assert_one_converted_visitor(page, site_id)
    # The dashboard's success rules show the revenue by source, the model a toggle.
    page.goto(f"/sites/{site_id}/?period=today")
    rows = page.locator("#revenue-by-source tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Newsletter")
    expect(rows.first).to_contain_text("$49.00")
    page.get_by_role("button", name="Linear").click()
    expect(page.get_by_role("button", name="Linear")).to_have_attribute("aria-pressed", "true")
    expect(rows.first).to_contain_text("Newsletter")
    # The rule's own page shows that rule's revenue by source, the model a toggle too.
    page.goto(f"/sites/{site_id}/rules/edit?name=paid-customer&period=today")
    rows = page.locator("#revenue-by-source tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("$49.00")
    page.get_by_role("button", name="First visit").click()
    expect(page.get_by_role("button", name="First visit")).to_have_attribute("aria-pressed", "true")
    expect(rows.first).to_contain_text("Newsletter")


def test_a_backend_with_the_visitors_address_joins_the_visit_without_login(
    browser,
    page,
    live_server,
    page_server,  # noqa: F811
):
    site_id, token = owner_site(page, live_server, "omar@example.org")
    landing, _ = shop_pages(live_server, page_server)
    context, visitor = visitor_page(browser)
    try:
        anonymous_visit(visitor, landing)
        wait_for_events(live_server, DOMAIN, 2)
    finally:
        context.close()
    pay(live_server, token, {"ip": "127.0.0.1", "user_agent": DESKTOP_CHROME})
    assert_one_converted_visitor(page, site_id)


def _two_days_later(live_server) -> None:
    """Move the stored visit two days back and start a new day of cookieless ids (the
    salts go), as Wednesday would find Monday's visit; the summaries are rebuilt."""
    live_server.stop()
    with sqlite3.connect(live_server.instance / "datalook.db") as db:
        db.execute("UPDATE events SET occurred_at = datetime(occurred_at, '-2 days')")
        db.execute("DELETE FROM visitor_salts")
    live_server.cli("analytics", "rebuild", "--all")
    live_server.start()


@pytest.mark.parametrize("mode", ["persistent", "cookieless"])
def test_persistent_ids_join_a_monday_visit_to_a_wednesday_payment(
    browser,
    page,
    live_server,
    page_server,  # noqa: F811
    mode,
):
    email = f"{mode}@example.org"
    site_id, token = owner_site(page, live_server, email)
    live_server.cli("sites", "set", DOMAIN, "--visitor-id", mode)
    landing, login = shop_pages(live_server, page_server, "user_42")
    context, visitor = visitor_page(browser)
    try:
        anonymous_visit(visitor, landing)
        wait_for_events(live_server, DOMAIN, 2)
        kept = visitor.evaluate("document.cookie + JSON.stringify(localStorage)")
        assert ("dl_id" in kept) == (mode == "persistent")
        _two_days_later(live_server)
        visitor.goto(login)  # Wednesday: the same browser logs in
        wait_for_events(live_server, DOMAIN, 3)
    finally:
        context.close()
    pay(live_server, token)
    time.sleep(2.5)
    log_in(page, email)
    got = attributed(page, site_id, "first", days=3)
    if mode == "persistent":
        assert got == {"Newsletter": "49.00"}
    else:  # Monday's cookieless visit stays another visitor: only the login visit counts
        assert got == {"Direct / None": "49.00"}
