"""What a person does in the browser, step by step: sign up, log in, add a site, create a key."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Response, expect

PASSWORD = "correct horse battery staple"
TOKEN_RE = re.compile(r"^dl_live_[A-Za-z0-9]{12}_[A-Za-z0-9]{38}$")
QUEST_TITLE = "Send events from your backend"


def sign_up(page: Page, email: str, password: str = PASSWORD) -> None:
    """Create an account through the sign-up form; land on the sites page, logged in."""
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/sites/$"))
    expect(page.get_by_role("heading", name="Your sites")).to_be_visible()


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Log in through the form; land on the sites page."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/sites/$"))


def log_out(page: Page) -> None:
    """Press "Log out" in the top bar; land on the log-in page."""
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("You are logged out.")).to_be_visible()


def add_site(page: Page, typed: str) -> int:
    """Add a site from the sites page; land on its dashboard and return the site id."""
    page.goto("/sites/")
    page.get_by_label("Domain").fill(typed)
    page.get_by_role("button", name="Add site").click()
    expect(page).to_have_url(re.compile(r"/sites/\d+/$"))
    return int(re.search(r"/sites/(\d+)/$", page.url).group(1))


def create_key(page: Page, site_id: int, name: str) -> tuple[str, Response]:
    """Open the backend quest, name a key and submit; return the token and the response of
    the show-once page (the POST redirects to it)."""
    page.goto(f"/sites/{site_id}/quests/server-events")
    page.get_by_label("Key name").fill(name)
    with page.expect_response(
        lambda r: r.request.method == "GET" and f"/sites/{site_id}/keys/created/" in r.url
    ) as posted:
        page.get_by_role("button", name="Create key").click()
    response = posted.value
    expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
    token = page.locator("#new-token").inner_text().strip()
    return token, response
