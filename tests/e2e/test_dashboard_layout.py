"""The dashboard with 30 days of demo data, in Chromium: it fits about two screens at
1280 px, its chart answers the pointer and the keyboard with its own tooltip, a value
clicked in a panel (or a filter from the form) filters the figures and a chip takes it
away, changes carry an arrow or "—", numbers have one format, and at 390 px nothing
scrolls sideways, the site tabs keep to one row and the chart's text stays readable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import TIMEOUT_MS
from tests.e2e.flows import PASSWORD, log_in
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

EMAIL = "owner@demo.example"
DOMAIN = "demo.example"
DEMO_EVENTS = 8_000
MAX_HEIGHT = 2_700
COUNT = re.compile(r"^≈?\d{1,3}(,\d{3})*$")
MONEY = re.compile(r"^\$\d{1,3}(,\d{3})*\.\d{2}$")
PERCENT = re.compile(r"^\d+\.\d%$")
CHANGE = re.compile(r"^(↑|↓) \d{1,3}(,\d{3})*%$|^—$|^0%$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[LiveServer]:
    """One server with an owner and a site holding 30 days of demo events."""
    server = LiveServer(tmp_path_factory.mktemp("dashboard") / "live-instance", workers=2)
    server.start()
    try:
        server.cli("users", "create", EMAIL, "--password", PASSWORD)
        server.cli("sites", "create", DOMAIN, "--owner", EMAIL)
        server.cli("demo", "seed", "--site", DOMAIN, "--events", str(DEMO_EVENTS), "--days", "30")
        yield server
    finally:
        server.stop()


@pytest.fixture
def owner_page(browser, demo) -> Iterator[Page]:
    """A logged-in page on the demo server, at 1280 px."""
    context = browser.new_context(base_url=demo.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page = context.new_page()
    log_in(page, EMAIL)
    yield page
    context.close()


def _figure(page: Page, key: str) -> str:
    """The text of one top figure."""
    return page.locator(f'[data-figure="{key}"]').inner_text().strip()


def test_one_screen_of_figures_chart_and_panels(owner_page, screenshot):
    page = owner_page
    page.goto("/sites/1/?period=30d")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= MAX_HEIGHT, height
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # Numbers in one format; each change an arrow, 0% or "—", never "−0%".
    assert COUNT.match(_figure(page, "visitors")) and COUNT.match(_figure(page, "pageviews"))
    assert MONEY.match(_figure(page, "revenue")), _figure(page, "revenue")
    assert PERCENT.match(_figure(page, "conversion_rate"))
    changes = page.locator("[data-change] .change-text").all_inner_texts()
    assert changes and all(CHANGE.match(text.strip()) for text in changes), changes
    assert "−0%" not in page.content()
    # The grid of panels, each with a proportional bar per row and "Details".
    for panel in ("sources", "pages", "locations", "devices", "goals", "prop"):
        expect(page.locator(f'[data-panel="{panel}"]')).to_be_visible()
    pages = page.locator('[data-panel="pages"] tbody tr')
    assert pages.count() >= 3
    widths = [
        float(r.get_attribute("width")) for r in page.locator('[data-panel="pages"] rect').all()
    ]
    assert widths[0] == 100 and widths == sorted(widths, reverse=True)
    expect(page.locator('[data-panel="prop"] tr[data-value="(none)"]')).to_be_visible()
    # Live, quests and "How we count" are off the main column; done quests fold away.
    assert page.locator(".live-panel").count() == 0
    expect(page.locator(".dash-side")).to_be_visible()
    expect(page.locator(".counting-rules")).to_be_hidden()
    screenshot(page, "dashboard-1280")

    # A range still to come: no change makes sense.
    tz_today = datetime.now(UTC).date()
    start, end = tz_today + timedelta(days=10), tz_today + timedelta(days=20)
    page.goto(f"/sites/1/?from={start.isoformat()}&to={end.isoformat()}")
    assert set(page.locator("[data-change] .change-text").all_inner_texts()) == {"—"}


def test_the_chart_tooltip_answers_hover_and_keyboard(owner_page):
    page = owner_page
    page.goto("/sites/1/?period=30d&metric=revenue")
    columns = page.locator(".chart-col")
    assert columns.count() == 30
    assert page.locator(".chart-col title, .chart-col [title]").count() == 0  # no native tips
    tip = columns.nth(4).locator(".chart-tip")
    columns.nth(4).hover()
    expect(tip).to_be_visible()
    box = tip.bounding_box()
    assert box["width"] > 40 and box["height"] > 20
    assert re.search(r"\$[\d,]+\.\d{2}", tip.inner_text())
    expect(page.locator('[data-dot="4"]')).to_have_class(re.compile(r"\bon\b"))

    page.mouse.move(0, 0)
    page.locator('.chart-col[tabindex="0"]').focus()
    focused = page.evaluate("document.activeElement.dataset.col")
    assert focused == "29"  # the latest bucket, today's partial one
    expect(columns.nth(29)).to_have_class(re.compile(r"\bpartial\b"))
    assert "(so far)" in columns.nth(29).locator(".chart-tip").inner_text()
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.dataset.col") == "28"
    tip = columns.nth(28).locator(".chart-tip")
    assert tip.bounding_box()["width"] > 40
    assert columns.nth(28).get_attribute("tabindex") == "0"
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.dataset.col") == "0"
    # The value axis is scaled to the data and formatted as money, never clipped.
    labels = page.locator(".chart-y span").all_inner_texts()
    assert labels[-1] == "$0.00" and all(MONEY.match(label) for label in labels)
    for label in page.locator(".chart-y span").all():
        size = label.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert size[0] <= size[1] + 1


def test_a_clicked_value_filters_everything_and_its_chip_removes_it(owner_page):
    page = owner_page
    page.goto("/sites/1/?period=30d")
    before = {key: _figure(page, key) for key in ("visitors", "pageviews", "conversions")}
    row = page.locator('[data-panel="pages"] tbody tr').nth(2)
    value = row.get_attribute("data-value")
    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"filter=page%3D%3D"))
    chip = page.locator("[data-filter-chip]")
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text(f"Page is {value}")
    after = {key: _figure(page, key) for key in before}
    assert after != before and _figure(page, "pageviews") == pageviews_of(page, value)
    expect(page.locator('[data-panel="pages"] tbody tr')).to_have_count(1)

    page.get_by_role("link", name=f"Remove the filter Page is {value}").click()
    expect(page.locator("[data-filter-chip]")).to_have_count(0)
    assert {key: _figure(page, key) for key in before} == before

    # The form: a page that contains "pric".
    page.get_by_text("+ Add filter").click()
    page.get_by_label("Dimension").select_option("page")
    page.get_by_label("Operator").select_option(label="contains")
    page.get_by_label("Value").fill("pric")
    page.get_by_role("button", name="Apply filter").click()
    expect(page.locator("[data-filter-chip]")).to_contain_text("Page contains pric")
    assert _figure(page, "visitors") != before["visitors"]


def pageviews_of(page: Page, value: str) -> str:
    """The page views of one page, as its Details page lists them."""
    return page.evaluate(
        """async (value) => {
            const url = "/sites/1/breakdown.json?period=30d&dimension=page&filter=page=="
                + encodeURIComponent(value);
            const body = await (await fetch(url)).json();
            return body.rows[0].pageviews.toLocaleString("en-US");
        }""",
        value,
    )


def test_a_phone_sees_the_whole_dashboard(owner_page, screenshot):
    page = owner_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/sites/1/?period=30d")
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > 391)"
        ".filter(e => !e.closest('.sitenav-tabs, .panel-tabs'))"
        ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
    )
    assert width <= 390, (width, wide)
    # The site tabs keep to one row, which scrolls sideways.
    tops = page.locator(".sitenav-tabs a").evaluate_all(
        "links => links.map(a => Math.round(a.getBoundingClientRect().top))"
    )
    assert len(set(tops)) == 1, tops
    assert page.locator(".sitenav-tabs").evaluate("e => e.scrollWidth > e.clientWidth")
    # Every text of the chart is at least 11 px on screen.
    sizes = page.locator("[data-chart] span, [data-chart] strong").evaluate_all(
        "nodes => nodes.map(n => parseFloat(getComputedStyle(n).fontSize))"
    )
    assert sizes and min(sizes) >= 11, min(sizes)
    ticks = page.locator(".chart-x span span:visible")
    assert ticks.count() >= 2
    for tick in ticks.all():
        box = tick.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(page, "dashboard-390")
