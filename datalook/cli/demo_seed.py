"""Realistic demo events, generated in time order (`flask demo seed`; demo_write stores them).

Visitors come in sessions: a session enters the site on a landing page and walks a few
plausible pages (home, pricing, sign-up, the app, checkout, docs, blog posts), each page
view followed at times by clicks or custom events; sign-ups, upgrades and checkouts end in
success events with values, confirmed by the backend. Many sessions bounce (one page view,
nothing else), more of them from social sites than from a newsletter. Half the sessions
carry properties (plan, source).

Acquisition: each session arrives from one place (search engines, social sites, referring
sites, newsletters and ad campaigns with UTM medium, term and content, ad click ids, or
directly) on one device, browser and OS (real User-Agent strings) from one country. Every
column is derived as ingestion derives it (ingest.arrivals): the landing page load carries
the referrer and UTM, later page loads are the site's own (Direct / None).

Identity, as /collect and the identity links leave it: every browser event keeps its
cookieless `c:` id. IDENTIFIED_SHARE of the sessions belong to a known user: from some
page view on (a log-in) the browser sends the user id, which links the `c:` id to the user
(a visitor_links row), so the session's anonymous events before it count as the user too
(visitor `u:<id>`, as a link applied by analytics.identity leaves them); their successes
are confirmed by the backend with the visitor's forwarded address and User-Agent (which
joins the visit: a server's link). The other sessions stay anonymous (`c:` visitors); their
successes come from the backend for a user without context, joining no visit.
"""

from __future__ import annotations

import functools
import json
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from operator import itemgetter
from typing import NamedTuple

from ..ingest import arrivals
from ..ingest.arrival_fields import Arrival
from ..models import LINK_FROM_BROWSER, LINK_FROM_SERVER, utcnow
from .demo_data import (
    ARRIVALS,
    COUNTRIES,
    CUSTOM,
    DEVICES,
    ENTRY,
    NEXT,
    PLANS,
    RULES,
    SOURCES,
)

CHUNK = 50_000
IDENTIFIED_SHARE = 0.30  # sessions whose browser a user id identifies (a link)
PROPERTIES_SHARE = 0.5  # sessions whose events carry properties
CLICK_SHARE, CUSTOM_SHARE = 0.25, 0.12  # after a page view
UPGRADE_SHARE = 0.15  # page views of /app/settings that end in an upgrade
MAX_PAGES = 15
ACQUISITION = arrivals.COLUMNS
_COUNTRY = ACQUISITION.index("country")
# The site's own host: later page loads have it as their referrer, which is no source.
OWN_HOSTS = ("demo.example",)


def _table(weights: dict[str, float]) -> tuple[list[str], list[float]]:
    """Choices and cumulative weights for a draw by bisect (cheaper than rng.choices)."""
    return list(weights), list(accumulate(weights.values()))


def _pick(rng: random.Random, cumulative: Sequence[float]) -> int:
    """The index of one weighted draw."""
    return bisect(cumulative, rng.random() * cumulative[-1])


def _draw(rng: random.Random, table: tuple[list[str], list[float]]) -> str:
    """One weighted draw."""
    choices, cumulative = table
    return choices[bisect(cumulative, rng.random() * cumulative[-1])]


_ARRIVAL_WEIGHTS = list(accumulate(arrival[0] for arrival in ARRIVALS))
_DEVICE_WEIGHTS = list(accumulate(device[0] for device in DEVICES))
_COUNTRY_TABLE = _table(COUNTRIES)
_NEXT = {page: _table(weights) for page, weights in NEXT.items()}
_ENTRY = _table(ENTRY)
_PROPS = [
    [json.dumps({"plan": plan, "source": source}, separators=(",", ":")) for source in SOURCES]
    for plan in PLANS
]


def _with_country(columns: dict[str, str | None], country: str) -> tuple:
    """Derived columns as a tuple in ACQUISITION order, with the visitor's country (what
    the address would give: the seed has no addresses)."""
    values = [columns[name] for name in ACQUISITION]
    values[_COUNTRY] = country
    return tuple(values)


@functools.cache
def landing_columns(arrival: int, device: int, country: str, month: str) -> tuple:
    """The acquisition columns of a landing page load, derived as ingestion does."""
    _, _, referrer, utm, click_ids = ARRIVALS[arrival]
    _, user_agent, width = DEVICES[device]
    utm = {key: value.format(month=month) for key, value in utm.items()}
    came = Arrival(referrer, utm, click_ids, width, None, user_agent)
    return _with_country(arrivals.derive(came, OWN_HOSTS), country)


@functools.cache
def later_columns(device: int, country: str) -> tuple:
    """The acquisition columns of a later page load (the site's own referrer)."""
    _, user_agent, width = DEVICES[device]
    came = Arrival(f"https://{OWN_HOSTS[0]}/", {}, (), width, None, user_agent)
    return _with_country(arrivals.derive(came, OWN_HOSTS), country)


@functools.cache
def server_columns(device: int | None, country: str | None) -> tuple:
    """A backend's success event: with the visitor's forwarded User-Agent and address
    (`device`, `country`), or saying nothing of where it came from (None)."""
    if device is None or country is None:
        return tuple(arrivals.derive(Arrival(), ())[name] for name in ACQUISITION)
    came = Arrival(None, {}, (), None, None, DEVICES[device][1])
    return _with_country(arrivals.derive(came, ()), country)


class Generated(NamedTuple):
    """A generated event. `offset` in seconds from the start; `user`: its success_user_id;
    `anonymous_id`: a browser's `c:` id; `joins`: the `c:` id a server event's context
    joins; `moved`: set on a browser's anonymous events that a link makes the user's (their
    visitor is `u:<user>` only once a link of their id was made). Page views, clicks and
    custom events come from the browser, successes from the backend."""

    offset: float
    kind: str
    name: str | None
    page: str
    user: str | None
    visitor: str
    anonymous_id: str | None
    micros: int | None
    props: str | None
    columns: tuple
    from_browser: bool
    joins: str | None
    moved: str | None


def _user(rng: random.Random, visitors: int) -> str:
    """A user id, heavy-tailed: a few users come back often, most rarely."""
    return f"user-{int(rng.paretovariate(1.2) * 7919) % visitors}"


def _walk(rng: random.Random, bounce: float) -> list[tuple[str, int, str | None, int | None]]:
    """A session's page loads: (page, page load number, success rule or None, value)."""
    page, previous = _draw(rng, _ENTRY), ""
    out = []
    for load in range(MAX_PAGES):
        success: tuple[str, int | None] | None = None
        if page == "/checkout/success":
            success = ("paid-customer", rng.choice(RULES[1][2]))
        elif page == "/app" and previous == "/signup":
            success = ("signup", None)
        elif page == "/app/settings" and rng.random() < UPGRADE_SHARE:
            success = ("upgrade", rng.choice(RULES[2][2]))
        out.append((page, load, *(success or (None, None))))
        if load == 0 and rng.random() < bounce:
            break
        previous, page = page, _draw(rng, _NEXT[page])
        if not page:
            break
    return out


def session_events(
    rng: random.Random, visitors: int, at: float, month: str, fits: float
) -> list[Generated]:
    """One session's events from offset `at` (seconds), in time order. `fits`: the offset
    before which the session's anonymous part and its log-in must lie (the chunk's end), so
    that whether a link is made is known when its anonymous events are written."""
    arrival, device = _pick(rng, _ARRIVAL_WEIGHTS), _pick(rng, _DEVICE_WEIGHTS)
    country = _draw(rng, _COUNTRY_TABLE)
    # A day's cookieless id is a keyed hash (any 32 hex digits); the seed's begin with the
    # session's start, so that its inserts into the events' index of them stay local.
    anonymous_id = f"c:{int(at):08x}{rng.getrandbits(96):024x}"
    identified = rng.random() < IDENTIFIED_SHARE
    user = _user(rng, visitors)
    props = None
    if rng.random() < PROPERTIES_SHARE:
        props = _PROPS[int(user[5:]) % len(PLANS)][rng.randrange(len(SOURCES))]
    landing = landing_columns(arrival, device, country, month)
    later = later_columns(device, country)
    walk = _walk(rng, ARRIVALS[arrival][1])
    # The log-in: the page load from which the browser sends the user id.
    login = rng.randrange(min(3, len(walk))) if identified else len(walk)
    visitor = f"u:{user}" if identified else anonymous_id
    out: list[Generated] = []
    for page, load, rule, micros in walk:
        columns = landing if load == 0 else later
        sends = user if load >= login else None
        mark = anonymous_id if identified and sends is None else None
        out.append(
            Generated(
                at,
                "pageview",
                None,
                page,
                sends,
                visitor,
                anonymous_id,
                None,
                props,
                columns,
                True,
                None,
                mark,
            )
        )
        roll = rng.random()
        if (load > 0 or len(walk) > 1) and roll < CLICK_SHARE + CUSTOM_SHARE:
            # (A bounce is one page view and nothing else.)
            kind, name = "click", None
            if roll >= CLICK_SHARE:
                kind, name = "custom", CUSTOM[rng.randrange(len(CUSTOM))]
            out.append(
                Generated(
                    at + 1 + 29 * rng.random(),
                    kind,
                    name,
                    page,
                    sends,
                    visitor,
                    anonymous_id,
                    None,
                    props,
                    columns,
                    True,
                    None,
                    mark,
                )
            )
        if rule:
            # Confirmed by the backend: an identified visitor's with its forwarded context
            # (joining the visit), an anonymous one's without.
            if identified:
                buyer, server, joins = user, server_columns(device, country), anonymous_id
            else:
                buyer, server, joins = _user(rng, visitors), server_columns(None, None), None
            out.append(
                Generated(
                    at + 31,
                    "success",
                    rule,
                    page,
                    buyer,
                    f"u:{buyer}",
                    None,
                    micros,
                    props,
                    server,
                    False,
                    joins,
                    None,
                )
            )
        at += 35 + 365 * rng.random()
    if identified and not _links_in_time(out, fits):
        # The anonymous part and the log-in would fall in different chunks: the browser is
        # identified from its first page load instead.
        out = [e._replace(user=e.user or user, moved=None) if e.moved else e for e in out]
    return out


def _makes_link(event: Generated) -> str | None:
    """The `c:` id an event links to its user: a browser's identified event, or a server
    event whose context joined the visit."""
    if event.from_browser:
        return event.anonymous_id if event.user is not None else None
    return event.joins


def _links_in_time(events: list[Generated], fits: float) -> bool:
    """Whether a session's first link and its anonymous events that the link moves all lie
    before `fits`."""
    makers = [e.offset for e in events if _makes_link(e)]
    moved = [e.offset for e in events if e.moved]
    return bool(makers) and min(makers) < fits and (not moved or max(moved) < fits)


# A link: [user id, origin, day, made at].
Link = list


def note_links(links: dict[str, Link], events: list[Generated], start: datetime) -> None:
    """Record the links these events (in time order) make, as ingestion records them: the
    first link of an id wins, except that a server's overrides a browser's."""
    for event in events:
        anonymous_id = _makes_link(event)
        if anonymous_id is None:
            continue
        at = start + timedelta(seconds=event.offset)
        origin = LINK_FROM_BROWSER if event.from_browser else LINK_FROM_SERVER
        found = links.get(anonymous_id)
        if found is None:
            links[anonymous_id] = [event.user, origin, at.date(), at]
        elif origin == LINK_FROM_SERVER and found[1] == LINK_FROM_BROWSER:
            found[0], found[1], found[3] = event.user, origin, at


@dataclass
class Chunk:
    """A chunk of generated events in time order, and the links that can no longer change
    (each: anonymous id, user id, origin, day, made at)."""

    events: list[Generated]
    links: list[tuple]
    start: datetime


def _month(start: datetime, offset: float) -> str:
    """The year and month of an offset (the newsletter's campaign names)."""
    return (start + timedelta(seconds=offset)).strftime("%Y-%m")


def generate(events: int, days: int, visitors: int, seed: int = 1) -> Iterator[Chunk]:
    """Chunks of generated events in time order over the last days, with their links.

    The span is cut into slices of about CHUNK events; sessions start uniformly within a
    slice and their events past its end wait for the next slice, so every chunk is in time
    order and follows the previous one. Exactly `events` events in all (the last chunk is
    cut; a session whose log-in is cut off stays anonymous).
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not a secret
    end = utcnow()
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    chunks = max(1, -(-events // CHUNK))
    made = 0
    carried: list[Generated] = []
    links: dict[str, Link] = {}
    for index in range(chunks):
        slice_start, slice_end = span * index / chunks, span * (index + 1) / chunks
        target = events * (index + 1) // chunks - made
        now_rows = [e for e in carried if e.offset < slice_end]
        carried = [e for e in carried if e.offset >= slice_end]
        month = _month(start, slice_start)
        while len(now_rows) < target:
            at = slice_start + rng.random() * (slice_end - slice_start)
            for event in session_events(rng, visitors, at, month, slice_end):
                (now_rows if event.offset < slice_end else carried).append(event)
        now_rows.sort(key=itemgetter(0))
        if index == chunks - 1:  # exactly `events`; the carried rest would lie in the future
            now_rows = now_rows[: max(0, target)]
        note_links(links, now_rows, start)
        for n, event in enumerate(now_rows):
            if event.moved is not None and event.moved not in links:
                # Its log-in was cut off: no link was made.
                now_rows[n] = event._replace(visitor=event.moved)
        made += len(now_rows)
        # A link can still change while events of its id wait (none do after the last chunk).
        waiting = {e.anonymous_id or e.joins for e in carried} if index < chunks - 1 else set()
        settled = [(a, *link) for a, link in links.items() if a not in waiting]
        for anonymous_id, *_ in settled:
            del links[anonymous_id]
        yield Chunk(now_rows, settled, start)
