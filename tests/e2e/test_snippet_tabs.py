"""The snippet tabs on the show-once page: every tab, the keyboard, and a copied curl that runs.

The curl snippet is copied with its copy button, read back from the clipboard and run by bash
exactly as pasted; the page waiting for the key's first event then completes by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from playwright.sync_api import expect

from datalook.snippets.render import ENV_VAR, PLACEHOLDER, RUNTIMES
from tests.e2e.flows import add_site, create_key, sign_up

pytestmark = pytest.mark.e2e


def panel_of(page, tab):
    """The tab panel that a tab controls."""
    return page.locator(f"#{tab.get_attribute('aria-controls')}")


def expect_selected(page, tabs, index: int) -> None:
    """Exactly the tab at `index` is selected and its panel alone is shown."""
    tab = tabs.nth(index)
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(tab).to_have_attribute("tabindex", "0")
    expect(panel_of(page, tab)).to_be_visible()
    expect(page.locator('[role="tabpanel"]:visible')).to_have_count(1)
    expect(tabs.and_(page.locator('[aria-selected="true"]'))).to_have_count(1)


def test_snippet_tabs_copy_curl_and_run_it_to_complete_the_quest(page, live_server, screenshot):
    if shutil.which("curl") is None:
        if os.environ.get("DATALOOK_REQUIRE_ALL") == "1":
            pytest.fail("DATALOOK_REQUIRE_ALL=1 and curl is not installed")
        pytest.skip("curl is not installed")
    sign_up(page, "kim@example.org")
    site_id = add_site(page, "kim.example.com")
    token, _ = create_key(page, site_id, "Checkout service")

    tabs = page.get_by_role("tablist", name="Code samples").get_by_role("tab")
    expect(tabs).to_have_text([runtime.label for runtime in RUNTIMES])
    expect_selected(page, tabs, 0)

    # Click through every tab: each shows its own snippet, pre-filled with the new key.
    for index in range(len(RUNTIMES)):
        tabs.nth(index).click()
        expect_selected(page, tabs, index)
        code = panel_of(page, tabs.nth(index)).locator("pre code")
        expect(code).to_contain_text(token)
        expect(code).not_to_contain_text(PLACEHOLDER)

    # The keyboard moves between tabs too (arrows wrap around; Home and End jump).
    last = len(RUNTIMES) - 1
    tabs.nth(last).press("ArrowRight")
    expect_selected(page, tabs, 0)
    expect(tabs.nth(0)).to_be_focused()
    tabs.nth(0).press("ArrowLeft")
    expect_selected(page, tabs, last)
    expect(tabs.nth(last)).to_be_focused()
    tabs.nth(last).press("Home")
    expect_selected(page, tabs, 0)
    tabs.nth(0).press("End")
    expect_selected(page, tabs, last)
    tabs.nth(last).press("Home")
    tabs.nth(0).press("ArrowRight")
    expect_selected(page, tabs, 1)
    expect(tabs.nth(1)).to_be_focused()
    tabs.nth(1).press("ArrowLeft")
    expect_selected(page, tabs, 0)
    expect(tabs.nth(0)).to_have_text("curl")
    screenshot(page, "snippet-tabs")

    # Copy the curl snippet with its button and read it back from the clipboard.
    curl_panel = panel_of(page, tabs.nth(0))
    curl_panel.get_by_role("button", name="Copy the curl code").click()
    expect(curl_panel.get_by_role("status")).to_have_text("Copied.")
    pasted = page.evaluate("navigator.clipboard.readText()")
    assert pasted == curl_panel.locator("pre code").text_content()
    assert token in pasted
    assert f"{live_server.url}/event" in pasted

    # Run it as pasted, in a shell that has no key of its own in the environment.
    env = {name: value for name, value in os.environ.items() if name != ENV_VAR}
    result = subprocess.run(
        ["bash", "-c", pasted], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # The page was waiting for this key: it completes by itself.
    waiting = page.locator("#first-event")
    expect(waiting.get_by_role("heading")).to_have_text("✓ First event received — quest complete")
    details = waiting.locator("dl.event-details dd")
    expect(details.nth(0)).to_have_text("success")
    expect(details.nth(1)).to_have_text("paid-customer")
    expect(details.nth(2)).to_have_text("/checkout/success")
    screenshot(page, "snippet-run-complete")

    stored = live_server.stored_events("kim.example.com")
    assert len(stored) == 1
    assert stored[0]["success_user_id"] == "user_42"
    assert stored[0]["properties"] == {"plan": "starter"}
