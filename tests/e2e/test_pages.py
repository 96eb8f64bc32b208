"""Every page at phone (390 px), tablet (768 px) and desktop (1280 px) widths.

For each page and width: the page does not scroll sideways, every action on it is on screen
or reachable by scrolling (a wide table scrolls in its own box), and axe-core finds no
serious or critical accessibility violation. One server and one logged-in owner (with a
site, a rotated key and a stored event) serve all the cases.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ROOT, TIMEOUT_MS, require_or_skip
from tests.e2e.flows import QUEST_TITLE, add_site, create_key, sign_up
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

LANDING_PICTURE = ROOT / "datalook" / "static" / "dashboard.png"
UPDATE_SCREENSHOTS = os.environ.get("DATALOOK_UPDATE_SCREENSHOTS") == "1"
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = [390, 768, 1280]
HEIGHT = 900
FAILING_IMPACTS = ("serious", "critical")


@dataclass
class Owner:
    """The logged-in owner every case browses as, and what their site holds."""

    server: LiveServer
    state: dict
    site_id: int
    key_id: str  # the active key (the successor of a rotated one)
    rotation_notice: str  # what the rotated-key page said about the old key


@pytest.fixture(scope="module")
def site_owner(browser, tmp_path_factory) -> Iterator[Owner]:
    """One server; an owner with a site, a key rotated with a grace period, and one event."""
    server = LiveServer(tmp_path_factory.mktemp("pages") / "live-instance", workers=2)
    server.start()
    try:
        yield _prepare_owner(browser, server)
    finally:
        server.stop()


def _prepare_owner(browser, server: LiveServer) -> Owner:
    """Sign up in the browser, add a site, create and rotate a key, send one event."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": HEIGHT})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_up(page, "owner@example.test")
        site_id = add_site(page, "pages.example.com")
        token, _ = create_key(page, site_id, "Production server")
        old_key_id = token.split("_")[2]
        page.goto(f"/sites/{site_id}/keys/{old_key_id}/rotate")
        page.get_by_label("In 24 hours").check()
        page.get_by_role("button", name="Rotate key").click()
        new_token = page.locator("#new-token").inner_text().strip()
        notice = page.locator("#old-key-ends").inner_text()
        event = {
            "event_name": "success",
            "name": "paid-customer",
            "page_path": "/checkout/success",
            "success_value": 9.99,
            "success_user_id": "user_42",
            "properties": {"plan": "starter", "email": "someone@example.com"},
        }
        sent = requests.post(
            server.event_url,
            json=event,
            headers={"Authorization": f"Bearer {new_token}"},
            timeout=10,
        )
        assert sent.status_code == 204, sent.text
        # A headless browser's page view, dropped as a bot: the live view counts it.
        _send_as_headless_browser(server, "pages.example.com")
        state = context.storage_state()
    finally:
        context.close()
    return Owner(server, state, site_id, new_token.split("_")[2], notice)


HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)


def _send_as_headless_browser(server: LiveServer, domain: str) -> None:
    """POST /collect a page view as a headless browser would (dropped, counted as a bot)."""
    snippet = server.cli("sites", "snippet", domain)
    site_key = re.search(r'data-site="([^"]+)"', snippet).group(1)
    answer = requests.post(
        f"{server.url}/collect?site={site_key}",
        data='{"event_name": "pageview", "page_path": "/"}',
        headers={
            "Content-Type": "text/plain",
            "Origin": f"https://{domain}",
            "User-Agent": HEADLESS,
        },
        timeout=10,
    )
    assert answer.status_code == 204 and answer.headers["DataLook-Ignored"] == "bot"


def _erase(user_id: str) -> Callable[[Page, Owner], None]:
    """Ask to erase a user id from the privacy page: the confirmation, or the notice that
    there is nothing to erase."""

    def open_page(page: Page, owner: Owner) -> None:
        page.goto(f"/sites/{owner.site_id}/privacy")
        page.get_by_label("The visitor's success_user_id").fill(user_id)
        page.get_by_role("button", name="Erase…").click()
        page.wait_for_load_state("load")

    return open_page


def _live(page: Page, owner: Owner) -> None:
    """The live view, once it has shown its rows and the bot count."""
    page.goto(f"/sites/{owner.site_id}/live")
    expect(page.locator("[data-live-rows] tr").first).to_be_visible()
    expect(page.locator("[data-live-bots]")).to_contain_text("filtered as bots (HeadlessChrome)")
    if page.viewport_size["width"] <= 640:
        # On a phone each row is a card that fits: nothing scrolls sideways, not even the table.
        box = page.locator(".live-panel .table-wrap")
        assert box.evaluate("(el) => el.scrollWidth <= el.clientWidth"), "the live table scrolls"
        row = page.locator("[data-live-rows] tr").first
        expect(row.locator('td[data-label="Path"]')).to_have_text("/checkout/success")


def _show_once(page: Page, owner: Owner) -> None:
    """Create a key through the quest form: the show-once page."""
    width = page.viewport_size["width"]
    create_key(page, owner.site_id, f"Show once {width}")


def _funnel_report(page: Page, owner: Owner) -> None:
    """The report of the site's funnel, saved through the builder the first time."""
    page.goto(f"/sites/{owner.site_id}/funnels/")
    saved = page.get_by_role("link", name="Checkout to paid")
    if saved.count() == 0:
        page.goto(f"/sites/{owner.site_id}/funnels/new")
        page.get_by_label("Funnel name").fill("Checkout to paid")
        steps = page.locator("#steps > li")
        steps.nth(0).get_by_label("Page path").fill("/checkout/*")
        steps.nth(1).get_by_label("What happens").select_option("success")
        steps.nth(1).get_by_label("Success rule").fill("paid-customer")
        page.get_by_role("button", name="Save funnel").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Checkout to paid")
        return
    saved.click()
    page.wait_for_url(re.compile(r"/funnels/\d+"))


# Page name -> (logged in?, how to open it, actions that must be on screen or reachable).
PAGES: dict[str, tuple[bool, Callable[[Page, Owner], object], list[tuple[str, str]]]] = {
    "landing": (
        False,
        lambda page, owner: page.goto("/"),
        [("link", "Create your free account"), ("link", "Log in")],
    ),
    "signup": (False, lambda page, owner: page.goto("/signup"), [("button", "Sign up")]),
    "login": (False, lambda page, owner: page.goto("/login"), [("button", "Log in")]),
    "sites": (
        True,
        lambda page, owner: page.goto("/sites/"),
        [("button", "Add site"), ("link", "pages.example.com"), ("button", "Log out")],
    ),
    "dashboard": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/"),
        [("link", "API keys"), ("button", "Log out")],
    ),
    "dashboard-details": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/breakdown?dimension=page"),
        [("link", "← Dashboard"), ("link", "Download all 1 row as CSV")],
    ),
    "quests": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/quests/"),
        [("link", QUEST_TITLE)],
    ),
    "quest": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/quests/server-events"),
        [("button", "Create key"), ("button", "Copy the curl code")],
    ),
    "show-once": (
        True,
        _show_once,
        [("button", "Copy key"), ("button", "Copy the curl code")],
    ),
    "keys": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/keys/"),
        [("link", "Rotate"), ("link", "Revoke"), ("button", "Create key")],
    ),
    "rotate": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/keys/{owner.key_id}/rotate"),
        [("button", "Rotate key"), ("link", "Cancel")],
    ),
    "revoke": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/keys/{owner.key_id}/revoke"),
        [("button", "Revoke key"), ("link", "Cancel")],
    ),
    "docs": (
        False,
        lambda page, owner: page.goto("/docs/server-events"),
        [("button", "Copy the curl code")],
    ),
    "docs-browser": (
        False,
        lambda page, owner: page.goto("/docs/browser-sdk"),
        [("link", "/openapi.json")],
    ),
    "docs-reports": (
        False,
        lambda page, owner: page.goto("/docs/reports"),
        [("link", "/openapi.json"), ("link", "How we count")],
    ),
    "members": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/members"),
        [("button", "Invite"), ("link", "Delete this site…"), ("combobox", "Role")],
    ),
    "audit": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/audit"),
        [("button", "Filter"), ("link", "Download CSV")],
    ),
    "delete-site": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/delete"),
        [("button", "Delete this site and all its data"), ("link", "Cancel")],
    ),
    "docs-stats-api": (
        False,
        lambda page, owner: page.goto("/docs/stats-api"),
        [("link", "/openapi.json"), ("button", "Copy the curl code")],
    ),
    "shares": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/shares/"),
        [("button", "Create link"), ("link", "Share")],
    ),
    "error": (
        True,
        lambda page, owner: page.goto("/sites/999999/"),
        [("link", "Go to your sites")],
    ),
    "funnels": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/funnels/"),
        [("link", "New funnel"), ("link", "Journeys")],
    ),
    "funnel-builder": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/funnels/new?suggested=1"),
        [("button", "Add step"), ("button", "Save funnel")],
    ),
    "funnel-report": (True, _funnel_report, [("link", "Edit"), ("link", "All funnels")]),
    "journeys": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/journeys/?path=/checkout/success"),
        [("button", "Show"), ("button", "Where do visitors go next?")],
    ),
    "error-in-site": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/keys/created/999999"),
        [("link", "Go to your sites"), ("link", "API keys")],
    ),
    "live": (True, _live, [("button", "Clear test events")]),
    "privacy": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/privacy"),
        [("button", "Erase…"), ("button", "Clear test events")],
    ),
    "erase-confirm": (True, _erase("user_42"), [("button", "Erase for good"), ("link", "Cancel")]),
    "nothing-to-erase": (True, _erase("nobody_here"), [("button", "Erase…")]),
    "settings": (
        True,
        lambda page, owner: page.goto(f"/sites/{owner.site_id}/settings"),
        [("button", "Save")],
    ),
}

# Every visible control: each must be on screen, or come on screen when scrolled to.
UNREACHABLE_CONTROLS = """() => {
    const controls = document.querySelectorAll(
        'button, a.button, .actions a, select, input, textarea, [role="tab"]');
    const unreachable = [];
    for (const el of controls) {
        const box = el.getBoundingClientRect();
        if (el.type === 'hidden' || box.width === 0 || box.height === 0) continue;
        el.scrollIntoView({block: 'center', inline: 'center'});
        const seen = el.getBoundingClientRect();
        if (seen.left < 0 || seen.right > window.innerWidth + 0.5) {
            unreachable.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" `
                + `at ${Math.round(seen.left)}..${Math.round(seen.right)}`);
        }
    }
    window.scrollTo(0, 0);
    return unreachable;
}"""

# The smallest rendered font size (px) of the text inside an element.
SMALLEST_TEXT = """(selector) => {
    const root = document.querySelector(selector);
    let smallest = Infinity;
    for (const el of root.querySelectorAll('*')) {
        const text = Array.from(el.childNodes).some(
            (n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
        if (!text) continue;
        const box = el.getBoundingClientRect();
        const scale = el.ownerSVGElement && box.width ? box.width / el.getBBox().width : 1;
        smallest = Math.min(smallest, parseFloat(getComputedStyle(el).fontSize) * scale);
    }
    return smallest;
}"""

AXE_RUN = """async (impacts) => {
    const results = await axe.run(document, {resultTypes: ['violations']});
    return results.violations
        .filter((v) => impacts.includes(v.impact))
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3)
            .map((n) => n.target.join(' ')).join(', ')}`);
}"""


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core as installed by the Makefile's dev set-up (`npm ci` in tests/e2e)."""
    if not AXE.exists():
        require_or_skip(f"axe-core is not installed ({AXE.name}): run `make .venv/.dev-deps`")
    return AXE


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(PAGES))
def test_page_fits_the_screen_and_is_accessible(
    browser, site_owner, axe_script, screenshot, name, width
):
    owner = site_owner
    logged_in, open_page, actions = PAGES[name]
    context = browser.new_context(
        base_url=owner.server.url,
        viewport={"width": width, "height": HEIGHT},
        storage_state=owner.state if logged_in else None,
        bypass_csp=True,  # axe-core is injected as a script the page's CSP would refuse
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        open_page(page, owner)
        page.wait_for_load_state("load")

        overflow = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], f"{name} is {overflow[0]} px wide at {width} px"

        for role, label in actions:
            control = page.get_by_role(role, name=label, exact=True).locator("visible=true")
            expect(control.first).to_be_visible()
        assert page.evaluate(UNREACHABLE_CONTROLS) == [], f"{name} at {width} px"

        page.add_script_tag(path=str(axe_script))
        violations = page.evaluate(AXE_RUN, list(FAILING_IMPACTS))
        assert violations == [], f"{name} at {width} px: " + "; ".join(violations)
        assert errors == []
        if name == "funnel-report":  # text in the chart stays readable at every width
            smallest = page.evaluate(SMALLEST_TEXT, "#funnel-bars")
            assert smallest >= 11, f"funnel bars have {smallest} px text at {width} px"
        if name in ("dashboard", "show-once") and width == 390:
            screenshot(page, f"{name}-{width}", readme=f"{name}-phone.png")
        else:
            screenshot(page, f"{name}-{width}")
        if name == "dashboard" and width == 1280 and UPDATE_SCREENSHOTS:
            page.screenshot(path=str(LANDING_PICTURE), animations="disabled")
    finally:
        context.close()


def test_rotation_says_when_the_old_key_stops_and_links_its_successor(browser, site_owner):
    owner = site_owner
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"
    assert re.fullmatch(
        rf"The old key dl_live_\w{{12}}_•••• keeps working until {stamp}\. "
        r"Deploy this new key before then\.",
        owner.rotation_notice.strip(),
    ), owner.rotation_notice
    context = browser.new_context(base_url=owner.server.url, storage_state=owner.state)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"/sites/{owner.site_id}/keys/")
        rotated = page.locator("tr", has_text=re.compile(rf"expires {stamp}"))
        expect(rotated).to_have_count(1)
        expect(rotated).to_contain_text(f"replaced by dl_live_{owner.key_id}_••••")
        rotated.get_by_role("link", name=f"dl_live_{owner.key_id}_••••").click()
        expect(page).to_have_url(re.compile(rf"#key-{owner.key_id}$"))
        expect(page.locator(f"#key-{owner.key_id}")).to_contain_text("active")
    finally:
        context.close()


def test_a_phone_picks_the_runtime_from_a_select(browser, site_owner):
    owner = site_owner
    context = browser.new_context(
        base_url=owner.server.url,
        viewport={"width": 390, "height": HEIGHT},
        storage_state=owner.state,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=owner.server.url)
    try:
        page = context.new_page()
        page.goto(f"/sites/{owner.site_id}/quests/server-events")
        runtime = page.get_by_label("Runtime")
        expect(runtime).to_be_visible()
        expect(page.get_by_role("tablist", name="Code samples")).to_be_hidden()
        expect(runtime).to_have_value("snippets-tab-curl")

        runtime.select_option(label="Python requests")
        python = page.locator('[data-runtime="python"]')
        expect(python).to_be_visible()
        expect(page.locator('[role="tabpanel"]:visible')).to_have_count(1)
        # The tabs follow the select (they come back on a wider screen).
        expect(page.locator("#snippets-tab-python")).to_have_attribute("aria-selected", "true")

        # The keyboard changes it too, and the copy button copies the chosen sample.
        runtime.focus()
        page.keyboard.press("ArrowDown")
        ruby = page.locator('[data-runtime="ruby"]')
        expect(ruby).to_be_visible()
        ruby.get_by_role("button", name="Copy the Ruby Net::HTTP code").click()
        expect(ruby.get_by_role("status")).to_have_text("Copied.")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == ruby.locator("pre code").text_content()
        assert "Net::HTTP" in copied
    finally:
        context.close()
