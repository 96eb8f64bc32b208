"""The "Send events from your backend" quest in the browser, from the key to the first event.

The key is shown once (copy button, no-store), never again on any page; an event sent by a
separate HTTP client with that key turns the waiting page to complete by itself.
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from datalook.snippets.render import PLACEHOLDER
from tests.e2e.flows import QUEST_TITLE, TOKEN_RE, add_site, create_key, sign_up

pytestmark = pytest.mark.e2e

EVENT = {
    "event_name": "success",
    "name": "paid-customer",
    "page_path": "/checkout/success",
    "success_value": 9.99,
    "success_user_id": "user_42",
    "properties": {"plan": "starter"},
}
COMPLETE = "✓ First event received — quest complete"


def assert_token_absent(page, token: str) -> None:
    """Neither the rendered page nor the server's HTML for its URL holds the token."""
    assert token not in page.content()
    assert token not in page.request.get(page.url).text()
    assert token.split("_")[-1] not in page.content()


def test_backend_quest_shows_the_key_once_and_completes_live(
    page, new_context, live_server, screenshot
):
    sign_up(page, "maria@example.org")
    site_id = add_site(page, "shop.example.com")
    page.get_by_role("link", name=QUEST_TITLE).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(QUEST_TITLE)
    expect(page.get_by_text("ad blockers can't touch server-to-server traffic")).to_be_visible()
    # The name the help text suggests is filled in already; the placeholder samples say 401.
    expect(page.get_by_label("Key name")).to_have_value("Production server")
    expect(page.get_by_text("run as is, these samples get 401 Unauthorized")).to_be_visible()

    # Name the key and submit: the page it leads to shows the token, never cached.
    token, response = create_key(page, site_id, "Production server")
    assert response.status == 200
    assert "no-store" in response.headers["cache-control"]
    assert TOKEN_RE.fullmatch(token), token
    expect(page.get_by_text("Copy this key now. It will not be shown again.")).to_be_visible()
    expect(page.get_by_text("Name: Production server")).to_be_visible()

    waiting = page.locator("#first-event")
    expect(waiting).to_contain_text("Waiting for your first event from this key…")
    screenshot(page, "show-once", readme="show-once.png")

    # The copy button puts exactly the token on the clipboard, and keeps its width.
    copy_width = page.get_by_role("button", name="Copy key").bounding_box()["width"]
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.get_by_role("button", name="Copied").bounding_box()["width"] == copy_width
    assert page.evaluate("navigator.clipboard.readText()") == token

    # Opening the quest again (another tab) and the keys page never show the token.
    other_tab = page.context.new_page()
    other_tab.goto(f"/sites/{site_id}/quests/server-events")
    expect(other_tab.locator("#first-event")).to_contain_text(
        "Waiting for your first event from “Production server”…"
    )
    expect(other_tab.locator('[data-runtime="curl"] pre code')).to_contain_text(PLACEHOLDER)
    assert_token_absent(other_tab, token)
    keys_page = page.context.new_page()
    keys_page.goto(f"/sites/{site_id}/keys/")
    key_id = token.split("_")[2]
    expect(keys_page.get_by_text(f"dl_live_{key_id}_••••")).to_be_visible()
    assert_token_absent(keys_page, token)
    keys_page.close()

    # A backend sends one event with the key: the show-once page completes without a reload.
    page.evaluate("window.stillTheSamePage = true")
    sent = requests.post(
        live_server.event_url,
        json=EVENT,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert sent.status_code == 204, sent.text
    expect(waiting.get_by_role("heading")).to_have_text(COMPLETE)
    assert page.evaluate("window.stillTheSamePage") is True
    details = waiting.locator("dl.event-details")
    expect(details.locator("dt")).to_have_text(["Type", "Name", "Page path", "Time"])
    expect(details.locator("dd").nth(0)).to_have_text("success")
    expect(details.locator("dd").nth(1)).to_have_text("paid-customer")
    expect(details.locator("dd").nth(2)).to_have_text("/checkout/success")
    # The time has the app's one format, in the site's zone (UTC until it has another).
    expect(details.locator("dd").nth(3)).to_have_text(
        re.compile(r"^20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
    expect(waiting.get_by_role("link", name="Open the dashboard")).to_have_attribute(
        "href", f"/sites/{site_id}/"
    )
    # The revisited quest page was waiting too, and completes the same way.
    expect(other_tab.locator("#first-event").get_by_role("heading")).to_have_text(COMPLETE)
    screenshot(page, "quest-complete", readme="quest-complete.png")

    # The token is on a GET page (Post/Redirect/Get): Back from the dashboard, then Forward,
    # or a reload, shows the same page again, never "Confirm Form Resubmission", and makes
    # no second key.
    shown_at = page.url
    assert re.search(rf"/sites/{site_id}/keys/created/\d+$", shown_at), shown_at
    waiting.get_by_role("link", name="Open the dashboard").click()
    expect(page).to_have_url(re.compile(rf"/sites/{site_id}/$"))
    page.go_back()
    expect(page).to_have_url(shown_at)
    expect(page.locator("body")).not_to_contain_text("Confirm Form Resubmission")
    expect(page.locator("#new-token")).to_have_text(token)
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"/sites/{site_id}/$"))
    page.go_back()
    with page.expect_response(lambda r: r.url == shown_at) as reloaded:
        page.reload()
    assert reloaded.value.request.method == "GET" and reloaded.value.status == 200
    expect(page.locator("#new-token")).to_have_text(token)
    keys_page = page.context.new_page()
    keys_page.goto(f"/sites/{site_id}/keys/")
    expect(keys_page.locator("table.keys tbody tr")).to_have_count(1)
    keys_page.close()

    # The quest is done from now on: the quest list, the dashboard and the quest page say so.
    page.goto(f"/sites/{site_id}/quests/")
    first = page.locator("ol.quests > li").first
    expect(first.get_by_role("heading")).to_have_text(QUEST_TITLE)
    expect(first).to_have_class(re.compile(r"\bquest-done\b"))
    expect(first.locator(".badge")).to_have_text("Done")
    page.goto(f"/sites/{site_id}/")
    expect(page.locator("ol.quests > li").first.locator(".badge")).to_have_text("Done")
    expect(page.locator('[data-figure="events"]')).to_have_text("1")
    page.goto(f"/sites/{site_id}/quests/server-events")
    expect(page.get_by_role("heading", name="✓ Quest complete")).to_be_visible()
    expect(page.locator("#first-event")).to_have_count(0)
    assert_token_absent(page, token)

    stored = live_server.stored_events("shop.example.com")
    assert [(e["event_name"], e["name"], e["page_path"]) for e in stored] == [
        ("success", "paid-customer", "/checkout/success")
    ]


def test_a_double_click_on_create_key_makes_one_key_and_keeps_its_token(page, live_server):
    sign_up(page, "double@example.org")
    site_id = add_site(page, "double.example.com")
    page.goto(f"/sites/{site_id}/quests/server-events")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    # The live key is the main choice; the test key is offered beside it.
    expect(page.locator("button.primary", has_text="Create key")).to_be_visible()
    expect(page.get_by_text("A test key (dl_test_…) is for trying the snippets")).to_be_visible()
    page.get_by_role("button", name="Create key").dblclick()
    expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
    token = page.locator("#new-token").inner_text().strip()
    assert TOKEN_RE.fullmatch(token) and token.startswith("dl_live_"), token
    assert len(posts) == 1, posts  # the second click was dropped by the page
    page.goto(f"/sites/{site_id}/keys/")
    expect(page.locator("table.keys tbody tr")).to_have_count(1)

    # Even when two posts of the same form get through (the script cannot stop a second
    # tab's submit of a copied form), the server shows the same key and makes no second.
    page.goto(f"/sites/{site_id}/keys/")
    page.get_by_label("Key name").fill("Second")
    landed = page.evaluate(
        """() => {
            const form = document.querySelector("form[data-submit-once]");
            const twice = new FormData(form);
            twice.set("kind", "live");
            return Promise.all([1, 2].map(() => fetch(form.action, {method: "POST", body: twice})))
                .then((answers) => answers.map((a) => a.url));
        }"""
    )
    assert landed[0] == landed[1] and "/keys/created/" in landed[0], landed
    page.goto(f"/sites/{site_id}/keys/")
    expect(page.locator("table.keys tbody tr")).to_have_count(2)
