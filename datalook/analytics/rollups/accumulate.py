"""Turning event rows into per-bucket increments of the rollups and visitor sketches.

An event row is the columns of EVENT_COLUMNS (``fold_columns`` reads them); an Accumulator
adds rows up, keyed as the summary tables are (site, hour or day, dimension), and keeps
the visitor ids of each hour as sketches of the hour, its day and its week. What it holds
is written by analytics.rollups.write.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import String, type_coerce

from ...ingest.schema import VALUE_SCALE
from ...models import Event
from .. import sketches
from .models import MAX_KEY, MAX_PAGE, MAX_VALUE

EVENT_COLUMNS = (
    Event.id,
    Event.site_id,
    Event.event_name,
    Event.name,
    Event.page_path,
    Event.visitor_id,
    Event.success_value_micros,
    Event.properties,
    Event.occurred_at,
    Event.received_at,
    # Read, not filtered in SQL: the fold's cursor must step over test events too, and a
    # filtered id would look like an uncommitted one.
    Event.is_test,
)


RECEIVED_AT = 9  # the position of received_at in a row of EVENT_COLUMNS


def fold_columns(dialect: str) -> tuple:
    """The event columns a fold reads; on SQLite the times stay text (parsed once per hour)."""
    if dialect != "sqlite":
        return EVENT_COLUMNS
    as_text = [type_coerce(Event.occurred_at, String), type_coerce(Event.received_at, String)]
    return (*EVENT_COLUMNS[:-3], *as_text, Event.is_test)


_KIND = {"pageview": 1, "click": 2, "custom": 3, "success": 4}


def split_money(micros: int) -> tuple[int, int]:
    """Whole units and remaining millionths of an amount (their sum is exact)."""
    return divmod(micros, VALUE_SCALE)


def property_text(value: object) -> str:
    """A property value as the breakdown shows it (JSON spelling for non-strings)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    else:
        text = str(value)
    return text[:MAX_VALUE]


def hour_and_day(occurred, cache: dict) -> tuple[datetime, datetime]:
    """The UTC hour and day of a stored time: a datetime, or SQLite's text (parsed once)."""
    if isinstance(occurred, datetime):
        hour = occurred.replace(minute=0, second=0, microsecond=0)
        return hour, hour.replace(hour=0)
    text = occurred[:13]
    found = cache.get(text)
    if found is None:
        hour = datetime.fromisoformat(text + ":00:00")
        found = cache[text] = (hour, hour.replace(hour=0))
    return found


_CACHED_PROPERTIES = 10_000


def _property_values(props: str, cache: dict) -> list[tuple[str, str]]:
    """The (key, text) pairs an event's properties add up under, remembered by their JSON
    (most events repeat a few property sets; bounded for those that do not)."""
    values = [(key[:MAX_KEY], property_text(value)) for key, value in orjson.loads(props).items()]
    if len(cache) >= _CACHED_PROPERTIES:
        cache.clear()
    cache[props] = values
    return values


def visitor_dims(kind: str, name: str | None, page: str) -> tuple[str, ...]:
    """The sketch dimensions one visitor's event counts in (as Accumulator.add keys them)."""
    dims: tuple[str, ...] = ("", "p:" + page[:MAX_PAGE])
    if kind == "success":
        dims += ("c",) if name is None else ("c", "r:" + name)
    return dims


@dataclass
class Accumulator:
    """Rollup deltas and visitor sketches of a set of events, keyed as their tables.

    Visitor ids are collected in sets per hour and dimension (cheap to add to) and turned
    into sketches by ``sketches_by_key``, or every FLUSH_EVERY events to bound memory.
    """

    totals: dict = field(default_factory=lambda: defaultdict(lambda: [0] * 8))
    rules: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    pages: dict = field(default_factory=lambda: defaultdict(int))
    properties: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    visitors: dict = field(default_factory=lambda: defaultdict(set))
    sketches: dict = field(default_factory=dict)
    count: int = 0
    # False: keep only which (site, hour, dim) had visitors (visitor_keys), no sketches
    # (taking events out: their sketches are recomputed, see forget.refresh_sketches).
    sketching: bool = True
    visitor_keys: set = field(default_factory=set)
    _hours: dict = field(default_factory=dict)
    _properties: dict = field(default_factory=dict)  # properties' JSON → (key, text) pairs

    FLUSH_EVERY = 200_000

    def add(self, row) -> None:
        """Add one event row (the columns of EVENT_COLUMNS); a test event adds nothing."""
        self.add_all((row,))

    def add_all(self, rows) -> None:
        """Add event rows (as `add`), in one loop that keeps its look-ups local: a fold
        and the demo seed add millions of rows."""
        totals_of, rules, pages, properties = self.totals, self.rules, self.pages, self.properties
        seen, hours, parsed = self.visitors, self._hours, self._properties
        kinds, flush_every = _KIND, self.FLUSH_EVERY
        for row in rows:
            _id, site, kind, name, page, visitor, micros, props, occurred, _, is_test = row
            if is_test:
                continue
            hour, day = hour_and_day(occurred, hours)
            page = page[:MAX_PAGE]
            success = kind == "success"
            units, rest = split_money(micros or 0) if success else (0, 0)
            totals = totals_of[(site, hour)]
            totals[0] += 1
            index = kinds.get(kind)
            if index:
                totals[index] += 1
            totals[5] += units
            totals[6] += rest
            pages[(site, 1, hour, page)] += 1
            pages[(site, 24, day, page)] += 1
            if success and name is not None:
                for span, start in ((1, hour), (24, day)):
                    rule = rules[(site, span, start, name)]
                    rule[0] += 1
                    rule[1] += units
                    rule[2] += rest
            if props:
                values = parsed.get(props)
                if values is None:
                    values = _property_values(props, parsed)
                for key, text in values:
                    for span, start in ((1, hour), (24, day)):
                        prop = properties[(site, key, span, start, text)]
                        prop[0] += 1
                        if success:
                            prop[1] += 1
                            prop[2] += units
                            prop[3] += rest
            if visitor[:2] != "a:":
                seen[(site, hour, "")].add(visitor)
                seen[(site, hour, "p:" + page)].add(visitor)
                if success:
                    seen[(site, hour, "c")].add(visitor)
                    if name is not None:
                        seen[(site, hour, "r:" + name)].add(visitor)
            else:
                totals[7] += 1
            self.count += 1
            if self.count % flush_every == 0:
                self._flush_visitors()

    def _flush_visitors(self) -> None:
        """Move the collected visitor ids into the hour, day and week sketches."""
        if not self.sketching:
            self.visitor_keys.update(self.visitors)
            self.visitors.clear()
            return
        found = self.sketches
        for (site, hour, dim), ids in self.visitors.items():
            day = hour.replace(hour=0)
            week = day - timedelta(days=day.weekday())
            for key in ((site, 1, dim, hour), (site, 24, dim, day), (site, 168, dim, week)):
                sketch = found.get(key)
                if sketch is None:
                    sketch = found[key] = sketches.new()
                for visitor in ids:
                    sketch.update(visitor)
        self.visitors.clear()

    def negate(self) -> None:
        """Turn every count and amount into its opposite (to take events out)."""
        for table in (self.totals, self.rules, self.properties):
            for counts in table.values():
                counts[:] = [-n for n in counts]
        for key in self.pages:
            self.pages[key] = -self.pages[key]

    def sketches_by_key(self) -> dict:
        """Every sketch filled so far, by (site, hours, dim, start)."""
        self._flush_visitors()
        return self.sketches
