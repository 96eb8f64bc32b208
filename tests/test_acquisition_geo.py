"""IP address -> country (registry data embedded in iptocc) and location (an optional .mmdb)."""

from __future__ import annotations

import logging

import maxminddb
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from datalook.acquisition import geo
from datalook.acquisition.geo import Location, country_of, location_of, public_address


# Addresses whose registered country has been stable for many years (checked against the
# shipped registry data): Google DNS, RIPE NCC, NIC.br, the M root server (WIDE, Tokyo).
@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),
        ("2001:4860:4860::8888", "US"),
        ("193.0.6.139", "NL"),
        ("2001:67c:2e8::1", "NL"),
        ("200.160.2.3", "BR"),
        ("202.12.27.33", "JP"),
        (" 8.8.8.8 ", "US"),
        ("::ffff:8.8.8.8", "US"),  # IPv4 written as IPv6
    ],
)
def test_country_of_public_addresses(ip, country):
    assert country_of(ip) == country


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "::1",
        "0.0.0.0",  # noqa: S104 - the unspecified address, looked up, not bound
        "169.254.10.1",  # link-local
        "fe80::1",
        "fc00::1",  # unique local
        "100.64.0.1",  # carrier-grade NAT
        "192.0.2.1",  # documentation
        "2001:db8::1",
        "224.0.0.1",  # multicast
        "ff02::1",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "::ffff:10.0.0.1",
        "",
        "not an address",
        "8.8.8",
        "8.8.8.8.8",
        "8.8.8.8:443",
        None,
    ],
)
def test_non_public_or_invalid_addresses_have_no_country(ip):
    assert country_of(ip) is None
    assert location_of(ip) is None


def test_public_address_unwraps_ipv4_mapped_addresses():
    assert str(public_address("::ffff:193.0.6.139")) == "193.0.6.139"


def test_registry_codes_that_are_no_country_are_dropped():
    assert geo._country_code("EU") is None
    assert geo._country_code("ZZ") is None
    assert geo._country_code("de") == "DE"
    assert geo._country_code("D1") is None
    assert geo._country_code(None) is None


def test_location_without_a_database_is_the_registry_country():
    assert location_of("193.0.6.139") == Location("NL", None, None)


@pytest.fixture(scope="module")
def city_database(tmp_path_factory):
    """A small MaxMind-format City database (the layout of GeoLite2 and DB-IP Lite City)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-City")
    writer.insert_network(
        IPSet(["8.8.8.0/24"]),
        {
            "country": {"iso_code": "US", "names": {"en": "United States"}},
            "subdivisions": [{"iso_code": "CA", "names": {"en": "California", "de": "Kal."}}],
            "city": {"names": {"en": "Mountain View"}},
        },
    )
    writer.insert_network(
        IPSet(["2001:4860::/32"]),
        {"country": {"iso_code": "US"}, "city": {"names": {"en": "Mountain View"}}},
    )
    # Only the registered country (an anycast or satellite network): that is used.
    writer.insert_network(IPSet(["202.12.27.0/24"]), {"registered_country": {"iso_code": "JP"}})
    # A city but no country: the country comes from the registry data.
    writer.insert_network(IPSet(["200.160.0.0/20"]), {"city": {"names": {"en": "São Paulo"}}})
    # Private space in the database is still never looked up.
    writer.insert_network(IPSet(["10.0.0.0/8"]), {"country": {"iso_code": "DE"}})
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("8.8.8.8", Location("US", "California", "Mountain View")),
        ("2001:4860:4860::8888", Location("US", None, "Mountain View")),
        ("202.12.27.33", Location("JP", None, None)),
        ("200.160.2.3", Location("BR", None, "São Paulo")),
        # Not in the database: the registry country alone.
        ("193.0.6.139", Location("NL", None, None)),
        ("10.1.2.3", None),
        ("127.0.0.1", None),
        ("garbage", None),
    ],
)
def test_location_of_with_a_database(city_database, ip, expected):
    assert location_of(ip, city_database) == expected
    assert location_of(ip, str(city_database)) == expected


def test_the_database_is_opened_once_per_path(city_database):
    assert geo.open_database(city_database) is geo.open_database(str(city_database))


def test_a_missing_or_broken_database_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError):
        location_of("8.8.8.8", tmp_path / "missing.mmdb")
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    with pytest.raises(maxminddb.InvalidDatabaseError):
        geo.open_database(broken)


def test_addresses_are_never_logged(city_database, caplog):
    caplog.set_level(logging.DEBUG)
    for ip in ("8.8.8.8", "10.0.0.1", "bogus-203.0.113.77"):
        country_of(ip)
        location_of(ip, city_database)
    assert caplog.records == []


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4",
        "255.255.255.255",
        "0.0.0.1",
        "::1",
        "2001:DB8::1",
        "::ffff:85.214.132.117",
        "fe80::1%eth0",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3",
        "1.2.3.256",
        "0x1.2.3.4",
        "1.2.3.4 ",
        "",
        "localhost",
        "2001:db8::1::2",
        "1:2:3:4:5:6:7:8:9",
    ],
)
def test_parse_address_reads_what_the_standard_parser_reads(text):
    import ipaddress

    try:
        wanted = ipaddress.ip_address(text)
    except ValueError:
        with pytest.raises(ValueError):
            geo.parse_address(text)
    else:
        assert geo.parse_address(text) == wanted
        assert str(geo.parse_address(text)) == str(wanted)
