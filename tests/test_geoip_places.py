"""Region and city from a GEOIP_DATABASE: the setting is checked at start-up, ingestion
derives both into the events (never the address), breakdown.json lists them and filters
on them; without a database they are "(not recorded)"."""

from __future__ import annotations

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from sqlalchemy import select

from datalook.config import ConfigError, from_environ
from datalook.extensions import db
from datalook.models import Event, Site
from tests.conftest import add_site, sign_up
from tests.test_collect import BrowserSite, collect


@pytest.fixture(scope="module")
def city_database(tmp_path_factory):
    """A small MaxMind-format City database written here."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-City")
    writer.insert_network(
        IPSet(["8.8.8.0/24"]),
        {
            "country": {"iso_code": "US"},
            "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
            "city": {"names": {"en": "Mountain View"}},
        },
    )
    writer.insert_network(
        IPSet(["9.9.9.0/24"]),
        {"country": {"iso_code": "US"}, "subdivisions": [{"names": {"en": "New York"}}]},
    )
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    writer.to_db_file(str(path))
    return path


def test_the_setting_must_name_a_readable_database(tmp_path, city_database):
    settings = from_environ({"GEOIP_DATABASE": str(city_database)}, tmp_path)
    assert settings["GEOIP_DATABASE"] == str(city_database)
    assert from_environ({}, tmp_path)["GEOIP_DATABASE"] is None
    with pytest.raises(ConfigError, match="GEOIP_DATABASE must be a readable"):
        from_environ({"GEOIP_DATABASE": str(tmp_path / "missing.mmdb")}, tmp_path)
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="GEOIP_DATABASE is not a valid"):
        from_environ({"GEOIP_DATABASE": str(broken)}, tmp_path)


def _site(app, client) -> BrowserSite:
    """The signed-up owner's site, as the browser tests address it."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        site = db.session.get(Site, site_id)
        return BrowserSite(site.id, site.site_key, site.domain, f"https://{site.domain}")


def _send(client, site, *addresses: str) -> None:
    """One browser page view from each address."""
    for address in addresses:
        body = {"event_name": "pageview", "page_path": "/"}
        assert collect(client, site, body, address=address).status_code == 204


def _rows(client, site_id: int, dimension: str, *filters: str) -> dict[str, int]:
    """breakdown.json's visitors per value (today)."""
    query = "".join(f"&filter={f}" for f in filters)
    answer = client.get(
        f"/sites/{site_id}/breakdown.json?dimension={dimension}&period=today{query}"
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {row["value"]: row["visitors"] for row in answer.get_json()["rows"]}


def test_region_and_city_come_from_the_database(make_app, city_database):
    app = make_app(GEOIP_DATABASE=str(city_database))
    client = app.test_client()
    site = _site(app, client)
    _send(client, site, "8.8.8.8", "8.8.8.9", "9.9.9.9", "193.0.6.139")
    with app.app_context():
        stored = db.session.execute(
            select(Event.country, Event.region, Event.city).order_by(Event.id)
        ).all()
    assert [tuple(row) for row in stored] == [
        ("US", "California", "Mountain View"),
        ("US", "California", "Mountain View"),
        ("US", "New York", ""),
        ("NL", "", ""),  # not in the database: the registry country alone
    ]
    assert _rows(client, site.id, "city") == {"Mountain View": 2, "(none)": 2}
    assert _rows(client, site.id, "region") == {"California": 2, "(none)": 1, "New York": 1}
    assert _rows(client, site.id, "country", "region==New York") == {"US": 1}
    assert _rows(client, site.id, "region", "city=~view") == {"California": 2}


def test_without_a_database_they_are_not_recorded(app, client):
    site = _site(app, client)
    _send(client, site, "8.8.8.8")
    with app.app_context():
        assert db.session.execute(select(Event.country, Event.region, Event.city)).one() == (
            "US",
            None,
            None,
        )
    assert _rows(client, site.id, "city") == {"(not recorded)": 1}
