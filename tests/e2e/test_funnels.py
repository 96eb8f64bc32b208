"""The "Build your first funnel" quest in the browser: suggested steps, edit, preview, save."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.flows import add_site, create_key, sign_up

pytestmark = pytest.mark.e2e

FUNNEL_QUEST = "Build your first funnel"


def send(live_server, token: str, events: list[dict]) -> None:
    """Send events with the key, as a backend would."""
    response = requests.post(
        live_server.url + "/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (200, 202, 207), response.text


def test_build_and_save_a_funnel_completes_the_quest(page, live_server, screenshot):
    sign_up(page, "lin@example.org")
    site_id = add_site(page, "lin-shop.example.com")
    token, _ = create_key(page, site_id, "Production")
    events = []
    for n in range(3):
        user = f"user_{n}"
        events.append({"event_name": "pageview", "page_path": "/", "success_user_id": user})
        events.append({"event_name": "pageview", "page_path": "/pricing", "success_user_id": user})
    events.append(
        {
            "event_name": "success",
            "name": "paid-customer",
            "page_path": "/checkout/success",
            "success_user_id": "user_0",
            "success_value": 19.5,
        }
    )
    send(live_server, token, events)

    # The quest is to do and suggests steps from the site's own paths and rules.
    page.goto(f"/sites/{site_id}/quests/")
    quest = page.locator("li.quest", has=page.get_by_role("heading", name=FUNNEL_QUEST))
    expect(quest.locator(".badge")).to_have_text("To do")
    quest.get_by_role("link", name=FUNNEL_QUEST).click()
    suggested = page.locator("#suggested-steps > li")
    expect(suggested.first).to_contain_text("/")
    expect(page.locator("#suggested-steps")).to_contain_text("paid-customer")
    page.get_by_role("link", name="Start with these steps").click()

    # The builder starts with the suggestions; the preview counts them.
    expect(page.get_by_role("heading", level=1)).to_have_text("New funnel")
    steps = page.locator("#steps > li")
    expect(steps).to_have_count(3)
    expect(steps.nth(0).get_by_label("Page path")).to_have_value("/")
    expect(steps.nth(1).get_by_label("Page path")).to_have_value("/pricing")
    expect(steps.nth(2).get_by_label("Success rule")).to_have_value("paid-customer")
    preview = page.locator("#preview-table tbody tr")
    expect(preview).to_have_count(3)
    expect(preview.nth(0).locator("td").nth(1)).to_have_text("3")
    expect(preview.nth(2).locator("td").nth(1)).to_have_text("1")

    # Each step shows the input of its kind only, offering the site's own values (from the
    # kind index, which the preview catches up within its budget: the fold process does it
    # otherwise, so on a loaded machine the values may take a few more page loads).
    page.reload()
    for _ in range(20):
        if page.locator("#funnel-paths > option").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(preview).to_have_count(3)
    first = steps.nth(0)
    expect(first.get_by_label("What happens")).to_have_value("pageview")
    expect(first.get_by_label("Success rule")).to_be_hidden()
    expect(first.get_by_label("Event name")).to_be_hidden()
    offered = first.get_by_label("Page path").evaluate(
        "input => Array.from(input.list.options).map(o => o.value)"
    )
    assert offered == ["/", "/pricing"]  # the paths of page views and clicks
    rules = (
        steps.nth(2)
        .get_by_label("Success rule")
        .evaluate("input => Array.from(input.list.options).map(o => o.value)")
    )
    assert rules == ["paid-customer"]
    expect(steps.nth(2).get_by_label("Page path")).to_be_hidden()

    # Add a step, move it up, then remove it: the preview follows each edit.
    page.get_by_role("button", name="Add step").click()
    expect(steps).to_have_count(4)
    added = steps.nth(3)
    added.get_by_label("What happens").select_option("success")
    expect(added.get_by_label("Success rule")).to_be_visible()
    expect(added.get_by_label("Page path")).to_be_hidden()
    added.get_by_label("What happens").select_option("click")
    expect(added.get_by_label("Success rule")).to_be_hidden()
    # A blank step is not counted as "any click": the preview says what it needs.
    expect(page.locator("#preview-status")).to_contain_text("Step 4: give the page path")
    expect(page.locator("#preview-table")).to_be_hidden()
    added.get_by_label("Page path").fill("/pricing")
    steps.nth(3).get_by_role("button", name="Move up").click()
    expect(steps.nth(2).get_by_label("What happens")).to_have_value("click")
    expect(preview).to_have_count(4)
    expect(preview.nth(2).locator("td").nth(0)).to_have_text("click /pricing")
    steps.nth(2).get_by_role("button", name="Remove step").click()
    expect(steps).to_have_count(3)
    expect(preview).to_have_count(3)
    expect(preview.nth(2).locator("td").nth(1)).to_have_text("1")

    # A bad window is explained in the preview without saving anything.
    page.get_by_label("Conversion window").fill("45d")
    expect(page.locator("#preview-status")).to_contain_text("window must be from 1 minute")
    expect(page.locator("#preview-table")).to_be_hidden()
    page.get_by_label("Conversion window").fill("7d")
    expect(page.locator("#preview-table")).to_be_visible()
    expect(page.locator("#preview-status")).to_contain_text("0 matching events without a visitor")
    expect(preview.nth(0).locator("td").nth(1)).to_have_text("3")
    screenshot(page, "builder")

    page.get_by_label("Funnel name").fill("Home to paid")
    page.get_by_role("button", name="Save funnel").click()
    expect(page).to_have_url(re.compile(rf"/sites/{site_id}/funnels/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Home to paid")
    table = page.locator("#funnel-table tbody tr")
    expect(table).to_have_count(3)
    expect(table.nth(0).locator("td").nth(0)).to_have_text("3")
    expect(table.nth(2).locator("td").nth(0)).to_have_text("1")
    expect(table.nth(2).locator("td").nth(5)).to_have_text("$19.50")  # as the dashboard shows money
    expect(page.locator("#funnel-bars rect.bar")).to_have_count(3)
    # The drop-off between the bars, and who dropped off (for those who manage the site).
    drops = page.locator("#funnel-bars [data-drop] .drop-share")
    expect(drops).to_have_text(["0%", "−67%"])
    screenshot(page, "report", readme="funnel-report.png")
    page.set_viewport_size({"width": 390, "height": 900})
    screenshot(page, "report-phone", readme="funnel-report-phone.png")
    page.goto(f"/sites/{site_id}/journeys/")
    expect(page.locator("#journeys-table")).to_contain_text("/pricing")
    screenshot(page, "journeys-phone", readme="journeys-phone.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "journeys", readme="journeys.png")
    page.go_back()
    page.get_by_role("link", name="Who dropped off").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dropped off before step 3")
    expect(page.locator("#step-visitors tbody tr")).to_have_count(2)
    expect(page.locator("#step-visitors")).to_contain_text("u:user_1")
    page.get_by_role("link", name="u:user_1").click()
    expect(page.locator("#visitor-sessions")).to_contain_text("/pricing")
    page.go_back()

    # The quest is done.
    page.goto(f"/sites/{site_id}/quests/")
    expect(quest.locator(".badge")).to_have_text("Done")
    page.goto(f"/sites/{site_id}/quests/funnel")
    expect(page.get_by_role("heading", name="✓ Quest complete")).to_be_visible()
