"""stats.json's visit figures for events sent the ordinary way: browsers through /collect, a
backend through /event; and the fields in the totals CSV."""

from __future__ import annotations

import csv
import io

from datalook.extensions import db
from datalook.models import Site
from tests.conftest import add_site, sign_up
from tests.test_collect import BrowserSite, collect


def _browser_site(app, client) -> BrowserSite:
    """The signed-up owner's new site, as the browser tests address it."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        site = db.session.get(Site, site_id)
        return BrowserSite(site.id, site.site_key, site.domain, f"https://{site.domain}")


def test_browser_page_views_make_visits_and_bounces(app, client):
    site = _browser_site(app, client)
    page = {"event_name": "pageview"}
    for path in ("/", "/pricing"):  # one visitor: a visit of two page views
        assert collect(client, site, {**page, "page_path": path}).status_code == 204
    # Another address is another visitor: one page view and nothing else, a bounce.
    assert collect(client, site, {**page, "page_path": "/"}, address="198.51.100.7").status_code
    # A click alone makes no visit (no page view).
    collect(client, site, {"event_name": "click", "page_path": "/"}, address="198.51.100.8")
    totals = client.get(f"/sites/{site.id}/stats.json?period=today").get_json()["totals"]
    assert totals["visits"] == 2
    assert totals["pageviews"] == 3
    assert totals["views_per_visit"] == 1.5
    assert totals["bounce_rate"] == 0.5
    assert totals["visit_duration_s"] >= 0
    answer = client.get(f"/sites/{site.id}/reports/totals.csv?period=today")
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert (rows[0]["visits"], rows[0]["bounce_rate"]) == ("2", "0.5")
    assert rows[1]["period"] == "previous" and rows[1]["visits"] == "0"
