"""Where visitors come from, in the reports' API: old events "(not recorded)",
breakdown.json's paging and parameter errors, and filters on stats.json and the CSV
reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datalook.extensions import db
from datalook.models import Site
from tests.analytics_helpers import Sample
from tests.analytics_helpers import store as store_samples
from tests.conftest import add_site, sign_up
from tests.factories import make_key
from tests.test_acquisition_ingest import CHROME_LINUX, DE, PAGEVIEW, send

# --- reports: old events, parameters, filters ---------------------------------------------------


@pytest.fixture
def owned(app, client):
    """A logged-in owner's site with a key: (site id, token)."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        token = make_key(db.session.get(Site, site_id), rate_limit="100000 per 10 seconds").token
    return site_id, token


def now() -> datetime:
    """Naive UTC now."""
    return datetime.now(UTC).replace(tzinfo=None)


def test_events_stored_before_are_not_recorded(app, client, owned):
    site_id, token = owned
    # Earlier today, whatever the time of day the test runs at (just after midnight too).
    earlier = max(now() - timedelta(hours=3), now().replace(hour=0, minute=0, second=0))
    with app.app_context():  # as the migration leaves them: every acquisition column NULL
        store_samples(site_id, [Sample(earlier, user="old")])
    context = {"referrer": "https://www.google.com/", "ip": DE, "user_agent": CHROME_LINUX}
    send(app.test_client(), token, {**PAGEVIEW, "success_user_id": "new", "context": context})
    for dimension, values in {
        "source": {"Google", "(not recorded)"},
        "channel": {"Organic Search", "(not recorded)"},
        "country": {"DE", "(not recorded)"},
        "device": {"desktop", "(not recorded)"},
        "campaign": {"(none)", "(not recorded)"},
        "page": {"/", "/landing"},
    }.items():
        body = client.get(f"/sites/{site_id}/breakdown.json?period=today&dimension={dimension}")
        assert {row["value"] for row in body.get_json()["rows"]} == values, dimension
    recorded = client.get(
        f"/sites/{site_id}/stats.json?period=today&filter=source==(not recorded)"
    ).get_json()
    assert recorded["totals"]["visitors"] == 1
    assert recorded["totals"]["visitors_exact"] is True


def test_breakdown_pages_its_rows(app, client, owned):
    site_id, token = owned
    ingest = app.test_client()
    for n, source in enumerate(["a", "b", "b", "c", "c", "c"]):
        body = {**PAGEVIEW, "success_user_id": f"u{n}", "context": {"utm": {"source": source}}}
        assert send(ingest, token, body).status_code == 204
    url = f"/sites/{site_id}/breakdown.json?period=today&dimension=source"
    first = client.get(url + "&limit=2").get_json()
    assert [(r["value"], r["visitors"]) for r in first["rows"]] == [("c", 3), ("b", 2)]
    assert (first["total_rows"], first["limit"], first["offset"]) == (3, 2, 0)
    rest = client.get(url + "&limit=2&offset=2").get_json()
    assert [r["value"] for r in rest["rows"]] == ["a"]
    assert client.get(url + "&offset=9").get_json()["rows"] == []


BAD_PARAMETERS = [
    ("", "dimension", "missing"),
    ("dimension=planet", "dimension", "unknown_dimension"),
    ("dimension=prop:", "dimension", "invalid_property_key"),
    ("dimension=source&limit=0", "limit", "out_of_range"),
    ("dimension=source&limit=101", "limit", "out_of_range"),
    ("dimension=source&limit=ten", "limit", "invalid_number"),
    ("dimension=source&offset=-1", "offset", "invalid_number"),
    ("dimension=source&offset=1000001", "offset", "out_of_range"),
    ("dimension=source&filter=", "filter", "empty_filter"),
    ("dimension=source&filter=source", "filter", "unknown_operator"),
    ("dimension=source&filter=source>=3", "filter", "unknown_operator"),
    ("dimension=source&filter=planet==mars", "filter", "unknown_dimension"),
    ("dimension=source&filter=prop:==x", "filter", "invalid_property_key"),
    ("dimension=source&filter=source==", "filter", "empty_value"),
    ("dimension=source&filter=source==" + "x" * 501, "filter", "value_too_long"),
    ("dimension=source" + "&filter=page=~a" * 21, "filter", "too_many_filters"),
    ("dimension=source&from=2026-01-02&to=2026-01-01", "to", "before_from"),
]


@pytest.mark.parametrize(("query", "field", "code"), BAD_PARAMETERS)
def test_bad_breakdown_parameters_are_a_400_naming_them(client, owned, query, field, code):
    site_id, _token = owned
    response = client.get(f"/sites/{site_id}/breakdown.json?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert [(e["field"], e["code"]) for e in error["errors"]] == [(field, code)]


@pytest.mark.parametrize("report", ["stats.json", "reports/totals.csv", "reports/pages.csv"])
def test_every_report_refuses_a_bad_filter(client, owned, report):
    site_id, _token = owned
    response = client.get(f"/sites/{site_id}/{report}?filter=planet==mars")
    assert response.status_code == 400
    if report.endswith(".json"):
        assert response.get_json()["error"]["errors"][0]["field"] == "filter"
    else:
        assert b"filter" in response.data


def test_filters_apply_to_the_csv_reports(app, client, owned):
    site_id, token = owned
    ingest = app.test_client()
    for user, source, plan in [("a", "google", "pro"), ("b", "bing", "pro"), ("c", "google", "x")]:
        body = {
            "event_name": "success",
            "name": "paid",
            "page_path": "/ok",
            "success_value": 10,
            "success_user_id": user,
            "properties": {"plan": plan},
            "context": {"utm": {"source": source}},
        }
        assert send(ingest, token, body).status_code == 204
    base = f"/sites/{site_id}/reports"
    totals = client.get(f"{base}/totals.csv?period=today&filter=source==Google").data.decode()
    assert totals.splitlines()[1].split(",")[3:6] == ["2", "0", "0"]  # events, pageviews, clicks
    plans = client.get(f"{base}/breakdown.csv?period=today&key=plan&filter=source==Google")
    assert plans.data.decode().splitlines()[1:] == ["pro,1,1,10.00", "x,1,1,10.00"]
    everything = client.get(f"{base}/breakdown.csv?period=today&key=plan")
    assert everything.data.decode().splitlines()[1] == "pro,2,2,20.00"
