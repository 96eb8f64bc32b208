"""A range cut into what the rollups store (whole UTC weeks, days, hours) and the sub-hour
edges read from raw events (zones with sub-hour offsets)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from ...extensions import db
from ...models import Event
from ..rollups import accumulate as summaries
from ..rollups.accumulate import Accumulator

HOUR = timedelta(hours=1)


DAY = timedelta(days=1)


WEEK = timedelta(days=7)


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    """The first whole UTC hour at or after `moment`."""
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def split(start: datetime, end: datetime) -> tuple[tuple[datetime, datetime] | None, list]:
    """Split [start, end) into whole UTC hours (or None) and the partial pieces around them."""
    inner_start, inner_end = ceil_hour(start), floor_hour(end)
    if inner_start >= inner_end:
        return None, [(start, end)] if start < end else []
    edges = [(a, b) for a, b in ((start, inner_start), (inner_end, end)) if a < b]
    return (inner_start, inner_end), edges


def pieces(start: datetime, end: datetime, weeks: bool) -> tuple[list, list]:
    """Cover [start, end) with stored spans, largest first: (hours, a, b) pieces of whole
    UTC weeks (from Monday; sketches only), days and hours, and the sub-hour edges left."""
    inner, edges = split(start, end)
    if not inner:
        return [], edges
    first_day = inner[0].replace(hour=0)
    if first_day < inner[0]:
        first_day += DAY
    last_day = inner[1].replace(hour=0)
    if first_day >= last_day:
        return [(1, *inner)], edges
    out = [(1, a, b) for a, b in ((inner[0], first_day), (last_day, inner[1])) if a < b]
    first_week = first_day + timedelta(days=(7 - first_day.weekday()) % 7)
    last_week = last_day - timedelta(days=last_day.weekday())
    if weeks and first_week < last_week:
        out.append((168, first_week, last_week))
        out += [(24, a, b) for a, b in ((first_day, first_week), (last_week, last_day)) if a < b]
    else:
        out.append((24, first_day, last_day))
    return out, edges


def covering(table, start: datetime, end: datetime):
    """A condition selecting day rows for the whole UTC days of [start, end) and hour rows
    around them (None if no whole hour), and the sub-hour pieces left for raw events."""
    spans, edges = pieces(start, end, weeks=False)
    parts = [and_(table.hours == n, table.hour >= a, table.hour < b) for n, a, b in spans]
    if not parts:
        return None, edges
    return (parts[0] if len(parts) == 1 else or_(*parts)), edges


def cut_spans(spans: list, cut: datetime) -> tuple[list, list]:
    """Split (hours, start, end) spans at `cut` (a UTC Monday midnight, which every span
    size divides): the spans before it and those after."""
    before, after = [], []
    for n, a, b in spans:
        if b <= cut:
            before.append((n, a, b))
        elif a >= cut:
            after.append((n, a, b))
        else:
            before.append((n, a, cut))
            after.append((n, cut, b))
    return before, after


#: Where a raw row (the rollups' EVENT_COLUMNS) holds is_test: the last column.
IS_TEST = len(summaries.EVENT_COLUMNS) - 1


def raw_rows(site_id: int, start: datetime, end: datetime) -> list:
    """The raw event rows of [start, end), as the fold reads them (a bounded piece)."""
    return db.session.execute(  # type: ignore[return-value]
        select(*summaries.EVENT_COLUMNS).where(
            Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end
        )
    ).all()


def raw_acc(site_id: int, pieces: list) -> Accumulator:
    """The fold of the raw events in the partial pieces."""
    acc = Accumulator()
    for start, end in pieces:
        acc.add_all(raw_rows(site_id, start, end))
    return acc


def money_micros(units, rest) -> int:
    """Exact millionths from summed units and remainders."""
    return int(units or 0) * 1_000_000 + int(rest or 0)


def as_stored(moment: datetime) -> datetime | str:
    """A time as the hour column reads back: SQLite's text, or a datetime elsewhere."""
    if db.engine.dialect.name == "sqlite":
        return moment.isoformat(" ", "microseconds")
    return moment
