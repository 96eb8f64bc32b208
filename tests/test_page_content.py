"""Pages for people: the landing page, one time format, the dashboard's column names."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from datalook.web.timefmt import site_time
from tests.conftest import sign_up


def test_landing_page_says_what_datalook_does_with_sign_up_one_click_away(client):
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "How it works" in page
    assert page.count('<li class="card"><h3>') == 3  # three steps
    assert 'src="/static/dashboard.png"' in page and 'alt="The DataLook dashboard' in page
    assert 'class="button primary" href="/signup">Create your free account</a>' in page
    picture = client.get("/static/dashboard.png")
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    picture.close()


def test_signed_in_owners_go_from_home_to_their_sites(client):
    sign_up(client)
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/sites/")


def test_sign_up_page_has_no_second_sign_up_button(client):
    page = client.get("/signup").get_data(as_text=True)
    assert 'href="/signup"' not in page  # the top bar's button would only reload the page
    assert 'href="/signup"' in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize(
    ("zone", "seconds", "expected"),
    [
        ("UTC", False, "2026-12-01 14:05 UTC"),
        ("UTC", True, "2026-12-01 14:05:07 UTC"),
        ("Europe/Berlin", False, "2026-12-01 15:05 CET"),
        ("Europe/Berlin", True, "2026-12-01 15:05:07 CET"),
        ("America/New_York", False, "2026-12-01 09:05 EST"),
        ("Not/AZone", False, "2026-12-01 14:05 UTC"),  # unknown here: exact in UTC
        (None, False, "2026-12-01 14:05 UTC"),
    ],
)
def test_times_have_one_format_in_the_sites_zone(zone, seconds, expected):
    stored = datetime(2026, 12, 1, 14, 5, 7)  # naive UTC, as stored
    assert site_time(stored, SimpleNamespace(timezone=zone), seconds=seconds) == expected


def test_a_missing_time_reads_never():
    assert site_time(None, SimpleNamespace(timezone="UTC")) == "never"


def test_dashboard_names_stripped_pii_fields_for_what_they_are(client, owner):
    page = client.get(f"/sites/{owner}/").get_data(as_text=True)
    assert "Removed keys" not in page
