"""Where an event's visitor came from and on what: the acquisition columns of events,
derived once at ingestion from what the event carried (arrival_fields.Arrival).

- source, channel: acquisition.sources / channels from the referrer, utm_source and ad
  click ids. A referrer on the site's own hosts (its domain and allowed origins, with their
  subdomains) or on a payment host (sources.DEFAULT_PAYMENT_HOSTS) is no source.
- medium, campaign, term, content: the utm values, trimmed and cut to 100 characters.
- referrer: the stored form (scheme, host, path; never the query) of a referrer that
  counted as a source.
- device, browser, browser_version, os, os_version: the User-Agent (the browser's header on
  /collect, `context.user_agent` on /event), the device class corrected by the screen width.
- country: the client address (the request's on /collect, `context.ip` on /event), looked
  up in memory (acquisition.geo); the address is never stored. region and city likewise,
  only with a GEOIP_DATABASE (acquisition.geo.use_database); without one they stay NULL.

"" stands for a value the event does not have ("(none)" in the reports); NULL is left to
the events stored before these columns existed ("(not recorded)").

A User-Agent parse is cached (acquisition.devices), so are the source and channel of a
referrer and campaign (their parse costs some 40 us, a hit 1 us), and a country lookup is
in memory (the address itself is never kept, not even in a cache): the derivation costs
about 10 microseconds per event. A site's own hosts are read with the site
on /collect; /event reads them only for an event whose context has a referrer, and keeps
them SITE_HOSTS_SECONDS per process (an edited allowed origin applies within that time).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Collection

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Dialect

from ..acquisition import channels, devices, geo, sources
from ..acquisition.utm import MAX_UTM_LENGTH, clean
from ..models import ACQUISITION_LENGTHS, Site
from ..sql.compiled import CompiledStatement, StatementCache
from .arrival_fields import Arrival

#: The acquisition columns of events, in the table's order.
COLUMNS = tuple(ACQUISITION_LENGTHS)
NONE = ""
SITE_HOSTS_SECONDS = 60.0
# Distinct (referrer, campaign, site) combinations whose source and channel are kept.
ACQUISITION_CACHED = 8192
_SITE_HOSTS_CACHED = 4096

_STATEMENTS = StatementCache(
    {
        "hosts": lambda d: CompiledStatement(
            select(Site.domain, Site.allowed_origins).where(Site.id == bindparam("site_id")), d
        )
    }
)
_hosts: dict[tuple[str | None, int], tuple[float, tuple[str, ...]]] = {}
_hosts_lock = threading.Lock()


def _cut(name: str, value: str | None) -> str:
    """A value as its column stores it: "" for none, cut to the column's length."""
    return value[: ACQUISITION_LENGTHS[name]] if value else NONE


@functools.lru_cache(maxsize=1024)
def own_hosts(domain: str, allowed_origins: str | None) -> tuple[str, ...]:
    """A site's own hosts: its domain and the origins its owner allowed (stored JSON)."""
    try:
        added = json.loads(allowed_origins) if allowed_origins else []
    except ValueError:
        added = []
    return (domain, *(origin for origin in added if isinstance(origin, str)))


@functools.lru_cache(maxsize=ACQUISITION_CACHED)
def _where_from(
    referrer: str | None,
    utm_source: str | None,
    medium: str | None,
    campaign: str | None,
    click_ids: tuple[str, ...],
    hosts: tuple[str, ...],
) -> tuple[str, str, str | None]:
    """The source, channel and stored referrer of a visit: a pure function of these
    (`referrer` in its stored form, never with its query), so kept for the next visit."""
    host = sources.counted_host(referrer, hosts)
    source = sources.source_of(referrer, utm_source, hosts, click_ids=click_ids)
    channel = channels.channel_of(source, medium, campaign, click_ids, host)
    return source, channel, referrer if host else None


def derive(arrival: Arrival, hosts: Collection[str]) -> dict[str, str | None]:
    """The acquisition columns of an event that arrived so, on a site with these hosts."""
    if not (arrival.referrer or arrival.utm or arrival.click_ids or arrival.ip):
        if not arrival.user_agent:  # most server events: the same columns every time
            return _says_nothing(geo.records_places())
    return _derived(arrival, hosts)


@functools.cache
def _says_nothing(places: bool) -> dict[str, str | None]:
    """The columns of an event that says nothing of where it came from (read-only), with
    region and city looked up or not."""
    return _derived(Arrival(), ())


def _derived(arrival: Arrival, hosts: Collection[str]) -> dict[str, str | None]:
    """derive()'s work, for an event that carries something: the columns of what it says
    besides its address (kept for the next event that says the same), then its place."""
    places = geo.records_places()
    columns = dict(
        _said(
            sources.referrer_of(arrival.referrer),
            tuple(arrival.utm.items()),
            tuple(arrival.click_ids),
            arrival.user_agent or None,
            arrival.screen_width,
            tuple(hosts),
            places,
        )
    )
    if places:
        place = geo.located(arrival.ip) if arrival.ip else None
        if place is not None:
            columns["country"] = _cut("country", place.country)
            columns["region"] = _cut("region", place.region)
            columns["city"] = _cut("city", place.city)
    elif arrival.ip:
        columns["country"] = _cut("country", geo.country_of(arrival.ip))
    return columns


@functools.lru_cache(maxsize=ACQUISITION_CACHED)
def _said(
    referrer: str | None,
    utm_items: tuple[tuple[str, str], ...],
    click_ids: tuple[str, ...],
    user_agent: str | None,
    screen_width: int | None,
    hosts: tuple[str, ...],
    places: bool,
) -> dict[str, str | None]:
    """The columns of an event by all it says but its address (`referrer` in its stored
    form, never with its query; the address is never a key here): country "" (none),
    region and city too when places are looked up, else NULL. Read-only: callers copy."""
    utm = {key: clean(value, MAX_UTM_LENGTH) for key, value in utm_items}
    source, channel, stored_referrer = _where_from(
        referrer,
        utm.get("source"),
        utm.get("medium"),
        utm.get("campaign"),
        click_ids,
        hosts,
    )
    found = {
        "source": source,
        "channel": channel,
        "medium": utm.get("medium"),
        "campaign": utm.get("campaign"),
        "term": utm.get("term"),
        "content": utm.get("content"),
        "referrer": stored_referrer,
    }
    if user_agent:
        device = devices.with_screen(devices.device_of(user_agent), screen_width)
        found.update(
            device=device.device,
            browser=device.browser,
            browser_version=device.browser_version,
            os=device.os,
            os_version=device.os_version,
        )
    columns: dict[str, str | None] = {name: _cut(name, found.get(name)) for name in COLUMNS}
    if not places:  # not looked up: "(not recorded)", never "(none)"
        columns["region"] = columns["city"] = None
    return columns


def site_hosts(connection, dialect: Dialect, database: str | None, site_id: int) -> tuple:
    """A site's own hosts for a server event, read on the request's DB-API connection and
    kept SITE_HOSTS_SECONDS per process."""
    now = time.monotonic()
    key = (database, site_id)
    with _hosts_lock:
        found = _hosts.get(key)
    if found is not None and now - found[0] < SITE_HOSTS_SECONDS:
        return found[1]
    cursor = connection.cursor()
    try:
        row = _STATEMENTS.get("hosts", dialect).execute(cursor, {"site_id": site_id}).fetchone()
    finally:
        cursor.close()
    hosts = own_hosts(row[0], row[1]) if row is not None else ()
    with _hosts_lock:
        if len(_hosts) >= _SITE_HOSTS_CACHED:
            _hosts.clear()
        _hosts[key] = (now, hosts)
    return hosts


def derive_events(
    events: list, connection, dialect: Dialect, database: str | None, site_id: int
) -> None:
    """Set the acquisition columns of a server's validated events (schema.Event); the
    site's hosts are read only when one of them has a referrer."""
    hosts: tuple = ()
    if any(event.arrival.referrer for event in events):
        hosts = site_hosts(connection, dialect, database, site_id)
    for event in events:
        event.acquisition = derive(event.arrival, hosts)
