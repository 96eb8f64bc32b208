"""An owner invites a viewer, who signs up from the link on a phone-sized screen, sees the
reports, is refused keys and erasure, and loses access when the owner removes them."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.flows import PASSWORD, add_site, sign_up

PHONE = {"width": 390, "height": 844}


def _fits(page) -> bool:
    """Whether the page needs no sideways scrolling."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_an_invited_viewer_joins_sees_reports_and_loses_access_on_removal(new_context, screenshot):
    owner = new_context().new_page()
    sign_up(owner, "owner@teams.example")
    site_id = add_site(owner, "teams.example")
    owner.get_by_role("link", name="Members").click()
    owner.get_by_label("Email").fill("viewer@teams.example")
    owner.get_by_label("Role", exact=True).select_option("viewer")
    owner.get_by_role("button", name="Invite").click()
    expect(owner.locator("#mail-status")).to_contain_text("No email was sent")
    link = owner.locator("#new-link").inner_text().strip()
    assert re.search(r"/invitations/dli_[A-Za-z0-9_-]+$", link)

    context = new_context()
    viewer = context.new_page()
    viewer.set_viewport_size(PHONE)
    viewer.goto(link)
    expect(viewer.get_by_role("heading", name="Join teams.example")).to_be_visible()
    expect(viewer.locator("main p").first).to_contain_text("as viewer")
    viewer.get_by_role("link", name="Sign up as viewer@teams.example").click()
    expect(viewer.get_by_label("Email")).to_have_value("viewer@teams.example")
    viewer.get_by_label("Password").fill(PASSWORD)
    viewer.get_by_role("button", name="Sign up").click()
    viewer.get_by_role("button", name="Accept and open teams.example").click()
    expect(viewer).to_have_url(re.compile(rf"/sites/{site_id}/$"))
    expect(viewer.get_by_text("you are viewer")).to_be_visible()
    expect(viewer.get_by_role("heading", name="Totals").first).to_be_visible()
    nav = viewer.get_by_role("navigation", name="Site")
    expect(nav.get_by_role("link", name="API keys")).to_have_count(0)
    expect(nav.get_by_role("link", name="Privacy")).to_have_count(0)
    assert _fits(viewer)
    viewer.goto(f"/sites/{site_id}/members")
    expect(viewer.locator('tr[data-member="owner@teams.example"]')).to_contain_text("owner")
    assert _fits(viewer)
    screenshot(viewer, "viewer-members-390px")
    for path, role in (
        (f"/sites/{site_id}/keys/", "admin"),
        (f"/sites/{site_id}/privacy", "owner"),
    ):
        response = viewer.goto(path)
        assert response is not None and response.status == 403
        expect(viewer.get_by_text(f"This needs the {role} role on this site")).to_be_visible()

    owner.goto(f"/sites/{site_id}/members")
    owner.get_by_role("button", name="Remove viewer@teams.example").click()
    expect(owner.get_by_text("viewer@teams.example no longer has access")).to_be_visible()

    response = viewer.goto(f"/sites/{site_id}/")
    assert response is not None and response.status == 404
    stats = context.request.get(f"/sites/{site_id}/stats.json")
    assert stats.status == 404
