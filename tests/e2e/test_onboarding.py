"""A new site owner in the browser: sign up, add a site, the dashboard, log out and back in.

Also: one owner cannot open another owner's site, and a form without its CSRF token is
refused with 400 and changes nothing.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.flows import QUEST_TITLE, add_site, log_in, log_out, sign_up

pytestmark = pytest.mark.e2e


def test_new_owner_signs_up_adds_a_site_and_sees_the_quests(page, new_context, screenshot):
    sign_up(page, "ada@example.org")
    expect(page.get_by_text("Welcome to DataLook!")).to_be_visible()
    expect(page.get_by_role("heading", name="Add your first site")).to_be_visible()

    site_id = add_site(page, "https://Example.com/")

    # The domain is normalised, and the dashboard says what to do next.
    expect(page.get_by_role("heading", level=1)).to_have_text("example.com")
    expect(page.get_by_text("example.com is added. Next: send your first event.")).to_be_visible()
    expect(page.locator(".sitenav .site-name")).to_have_text("example.com")
    empty = page.locator(".empty.next-step")
    expect(empty.get_by_role("heading", name="No events yet")).to_be_visible()
    expect(empty).to_contain_text("Start with the first quest: create an API key")
    expect(empty.get_by_role("link", name=QUEST_TITLE)).to_have_attribute(
        "href", f"/sites/{site_id}/quests/server-events"
    )

    # The quest list: the backend quest first and still to do, then the browser's and the
    # funnel's, each a live quest of its own.
    quests = page.locator("ol.quests > li")
    expect(quests.first.get_by_role("heading")).to_have_text(QUEST_TITLE)
    expect(quests.first.locator(".badge")).to_have_text("To do")
    expect(quests.first.get_by_role("link", name=QUEST_TITLE)).to_be_visible()
    assert quests.count() > 1
    expect(quests.nth(1).get_by_role("link", name="Add the browser snippet")).to_be_visible()
    expect(quests.nth(1).locator(".badge")).to_have_text("To do")
    expect(quests.nth(2).get_by_role("link", name="Build your first funnel")).to_be_visible()
    expect(quests.nth(2).locator(".badge")).to_have_text("To do")
    screenshot(page, "dashboard", readme="dashboard.png")

    # Log out: the site's pages now ask for a log-in.
    log_out(page)
    page.goto(f"/sites/{site_id}/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    # Log back in: the site is listed and opens its dashboard.
    log_in(page, "ADA@example.org")
    site_link = page.get_by_role("link", name="example.com", exact=True)
    expect(site_link).to_be_visible()
    site_link.click()
    expect(page).to_have_url(re.compile(rf"/sites/{site_id}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("example.com")

    # Another owner, in their own browser, adds their own site.
    other = new_context().new_page()
    sign_up(other, "grace@example.net")
    other_site = add_site(other, "grace-shop.example.com")
    assert other_site != site_id

    # Ada cannot open any page of it: 404, and nothing of the site is shown.
    for path in ("", "quests/", "quests/server-events", "keys/"):
        response = page.goto(f"/sites/{other_site}/{path}")
        assert response.status == 404, path
        expect(page.locator(".status-code")).to_have_text("404")
        expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
        assert "grace-shop" not in page.content()
    screenshot(page, "other-owners-site-404")

    # Ada's own sites list shows only her site.
    page.goto("/sites/")
    expect(page.locator(".site-list > li")).to_have_count(1)
    expect(page.get_by_role("link", name="grace-shop.example.com")).to_have_count(0)


def test_forms_without_csrf_token_are_refused_and_change_nothing(page, screenshot):
    sign_up(page, "lin@example.org")

    # Add a site with the CSRF token removed from the form.
    page.get_by_label("Domain").fill("no-token.example.com")
    removed = page.evaluate(
        """() => {
            const form = document.querySelector('main form');
            const inputs = form.querySelectorAll('input[name="csrf_token"]');
            inputs.forEach((input) => input.remove());
            return inputs.length;
        }"""
    )
    assert removed == 1
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Add site").click()
    assert posted.value.status == 400
    expect(page.locator(".status-code")).to_have_text("400")
    expect(page.get_by_text("The CSRF token is missing.")).to_be_visible()
    screenshot(page, "csrf-refused")

    page.goto("/sites/")
    expect(page.get_by_role("heading", name="Add your first site")).to_be_visible()
    expect(page.get_by_text("no-token.example.com")).to_have_count(0)

    # Log out without the token: refused, and the session survives.
    page.evaluate(
        """() => document
            .querySelectorAll('form[action="/logout"] input[name="csrf_token"]')
            .forEach((input) => input.remove())"""
    )
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Log out").click()
    assert posted.value.status == 400
    page.goto("/sites/")
    expect(page).to_have_url(re.compile(r"/sites/$"))
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
