"""Country (and, with a MaxMind / DB-IP database, region and city) of an IP address.

`country_of` needs no download and no file: the `iptocc` package embeds the five Regional
Internet Registries' delegation files (rebuilt with each release). That is the country an
address block is registered to, which matches where it is used for about 95% of IPv4
addresses; mobile carriers, VPNs and global networks are where the two part.

`location_of` reads an optional .mmdb file (the app's GEOIP_DATABASE setting: MaxMind
GeoLite2 / GeoIP2 City or Country, or DB-IP's IP-to-City / IP-to-Country Lite, which is
CC BY 4.0 and asks for attribution: "IP Geolocation by DB-IP") through the `maxminddb`
package. Without a database, or when it has no answer, the country comes from iptocc.

Addresses that are not public (private, loopback, link-local, shared, documentation,
multicast, reserved) have no location: None. An IPv4 address written as IPv6
(::ffff:203.0.113.9) is looked up as IPv4.

Privacy: an address is only looked up. It is never stored, logged, cached or put in an
exception message by this module.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from dataclasses import dataclass

import iptocc
import maxminddb

from .utm import clean

# Registry codes that are no country: EU and AP (whole regions), ZZ (unknown).
_NOT_COUNTRIES = frozenset({"EU", "AP", "ZZ"})
MAX_NAME_LENGTH = 100

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Location:
    """Where an address is: ISO 3166-1 alpha-2 country, region (first subdivision) and city
    names in English; None for what is not known."""

    country: str | None
    region: str | None = None
    city: str | None = None


def parse_address(text: str) -> Address:
    """An IPv4 or IPv6 address written as text (ValueError if it is none), as
    ipaddress.ip_address parses it, faster: the C parser first (a sixth of the time), the
    standard one for what it leaves (IPv6 scope ids)."""
    try:
        if ":" in text:
            return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text))
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        return ipaddress.ip_address(text)


def public_address(ip: str | None) -> Address | None:
    """The parsed address when `ip` is a public unicast IPv4 or IPv6 address, else None."""
    if not isinstance(ip, str):
        return None
    try:
        address = parse_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        return None
    return address


def _country_code(value: object) -> str | None:
    """`value` as an ISO 3166-1 alpha-2 code (upper case), or None when it is none."""
    if not isinstance(value, str) or len(value) != 2 or not value.isascii():
        return None
    code = value.upper()
    return code if code.isalpha() and code not in _NOT_COUNTRIES else None


def _registry_country(address: Address) -> str | None:
    """The country the Regional Internet Registries list for a public address."""
    return _country_code(iptocc.country_code(str(address)))


def country_of(ip: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 country of a public IP address from the embedded registry
    data; None for an invalid or non-public address or one no registry lists."""
    address = public_address(ip)
    return _registry_country(address) if address is not None else None


@functools.lru_cache(maxsize=4)
def _open(path: str) -> maxminddb.Reader:
    """open_database's cached part, keyed by the path as a string."""
    return maxminddb.open_database(path)


def open_database(path: str | os.PathLike[str]) -> maxminddb.Reader:
    """The reader of a .mmdb file, opened once per path (memory-mapped, thread-safe).

    Raises FileNotFoundError or maxminddb.InvalidDatabaseError for a missing or broken
    file: call it at startup to fail early on a wrong GEOIP_DATABASE.
    """
    return _open(os.fspath(path))


def _english_name(record: object) -> str | None:
    """The English name in a MaxMind-style {"names": {"en": ...}} record."""
    if isinstance(record, dict) and isinstance(names := record.get("names"), dict):
        return clean(names.get("en"), MAX_NAME_LENGTH)
    return None


def _from_database(reader: maxminddb.Reader, address: Address) -> Location | None:
    """Country, region and city of an address in a MaxMind-format database."""
    record = reader.get(address)
    if not isinstance(record, dict):
        return None
    country = None
    for key in ("country", "registered_country"):
        if isinstance(part := record.get(key), dict) and (
            country := _country_code(part.get("iso_code"))
        ):
            break
    subdivisions = record.get("subdivisions")
    region = None
    if isinstance(subdivisions, list) and subdivisions:
        region = _english_name(subdivisions[0])
    return Location(country, region, _english_name(record.get("city")))


def location_of(ip: str | None, database: str | os.PathLike[str] | None = None) -> Location | None:
    """Country, region and city of a public IP address: from the .mmdb at `database` when
    given (the country falling back to the registry data), else the registry country alone.
    None for an invalid or non-public address, or when nothing at all is known."""
    address = public_address(ip)
    if address is None:
        return None
    country = region = city = None
    if database and (found := _from_database(open_database(database), address)):
        country, region, city = found.country, found.region, found.city
    country = country or _registry_country(address)
    if country is None and region is None and city is None:
        return None
    return Location(country, region, city)


# The .mmdb file of this process (the app's GEOIP_DATABASE), set when the app is made: the
# ingestion paths derive outside any request context, so they read it here.
_configured: str | None = None


def use_database(path: str | os.PathLike[str] | None) -> None:
    """Use this .mmdb file for region and city from now on (None: none); it is opened here,
    so a missing or broken file fails at start-up."""
    global _configured
    if path:
        open_database(path)
    _configured = os.fspath(path) if path else None


def records_places() -> bool:
    """Whether region and city are looked up (a database is in use)."""
    return _configured is not None


def located(ip: str | None) -> Location | None:
    """location_of with the database in use (the registry country alone without one)."""
    return location_of(ip, _configured)
