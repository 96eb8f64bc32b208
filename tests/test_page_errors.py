"""A bad, reversed or out-of-range date range (or another bad report parameter) on a page
gets the dashboard's answer everywhere: a banner naming the parameter and the page again
with the default range, inside the site's navigation; error pages keep the normal layout."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from datalook.analytics.funnels import repository
from datalook.analytics.funnels.definition import parse_definition
from datalook.extensions import db
from tests.conftest import add_site, sign_up

BAD_RANGES = [
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from", "from must be a date YYYY-MM-DD"),
    ({"from": "2026-03-01", "to": "2026-02-01"}, "to", "to must be on or after from"),
    ({"from": "1900-01-01", "to": "2026-01-01"}, "from", "from must be from"),
    ({"from": "2000-01-01", "to": "2030-01-02"}, "to", "a range is at most 20 years"),
    ({"period": "forever"}, "period", "period must be one of"),
    ({"from": "2026-01-01"}, "to", "to is required with from"),
]


@pytest.fixture
def funnel(app, owner) -> int:
    """A saved two-step funnel of the owner's site."""
    steps = [{"event_name": "pageview", "page_path": "/"}, {"event_name": "pageview"}]
    with app.app_context():
        return repository.save(
            db.session, owner, "Sign-up", parse_definition(steps, "1h", "ordered")
        ).id


def _pages(owner: int, funnel: int) -> dict[str, str]:
    return {
        "funnel report": f"/sites/{owner}/funnels/{funnel}",
        "journeys": f"/sites/{owner}/journeys/",
        "dashboard": f"/sites/{owner}/",
    }


@pytest.mark.parametrize("page", ["funnel report", "journeys", "dashboard"])
def test_a_bad_range_falls_back_with_a_banner(client, owner, funnel, page):
    path = _pages(owner, funnel)[page]
    for args, field, message in BAD_RANGES:  # one table, on every page
        answer = client.get(f"{path}?{urlencode({**args, 'metric': 'visitors'})}")
        assert answer.status_code == 302, args
        location = answer.headers["Location"]
        assert location.split("?")[0] == path, args
        assert not any(f"{name}=" in location for name in ("from", "to", "period")), args
        shown = client.get(location)
        html = shown.get_data(as_text=True)
        assert shown.status_code == 200, args
        assert f"{field}: {message}" in html, args
        assert "Showing the last 30 days." in html, args
        assert 'class="sitenav"' in html  # inside the site's navigation
        assert "Last 30 days" in html


@pytest.mark.parametrize(("args", "field"), [({"steps": "99"}, "steps"), ({"start": "x"}, "start")])
def test_a_bad_journey_option_is_left_out_with_a_banner(client, owner, args, field):
    path = f"/sites/{owner}/journeys/"
    answer = client.get(f"{path}?{urlencode({**args, 'period': '7d'})}")
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{path}?period=7d"  # the good range is kept
    html = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"{field}: " in html and f"Showing the page without {field}." in html


def test_error_pages_keep_the_layout_and_the_sites_navigation(app, client, owner):
    missing = client.get(f"/sites/{owner}/funnels/987654")
    html = missing.get_data(as_text=True)
    assert missing.status_code == 404
    assert 'class="topbar"' in html and 'class="sitenav"' in html  # the owner's own site
    unknown = client.get("/sites/987654/")
    html = unknown.get_data(as_text=True)
    assert unknown.status_code == 404
    assert 'class="topbar"' in html and 'class="sitenav"' not in html
    assert "Go to your sites" in html


def test_someone_elses_site_gets_no_navigation(app, owner):
    intruder = app.test_client()
    sign_up(intruder, "intruder@example.com")
    add_site(intruder, "intruder.example.com")
    html = intruder.get(f"/sites/{owner}/funnels/1").get_data(as_text=True)
    assert 'class="sitenav"' not in html and "Not Found" in html


def test_a_server_error_page_keeps_the_layout(make_app):
    app = make_app(TESTING=False, PROPAGATE_EXCEPTIONS=False)

    def broken(site_id: int):
        """A page that fails."""
        raise RuntimeError("boom")

    app.add_url_rule("/sites/<int:site_id>/broken", view_func=broken)
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    answer = client.get(f"/sites/{site_id}/broken")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 500
    assert 'class="topbar"' in html and 'class="sitenav"' in html and "boom" not in html
