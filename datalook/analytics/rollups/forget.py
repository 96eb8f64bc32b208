"""Taking deleted events out of the report summaries (an erasure or a retention cut-off).

A subscriber of erasure.ON_EVENTS_DELETED (the contract: analytics.deletions): it runs in
the deleting transaction, before the DELETE, while the doomed events are still readable.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session

from ...models import Event
from ...sql.connections import dialect_insert
from .. import sketches
from ..deletions import DeletedEvents
from .accumulate import Accumulator, fold_columns, hour_and_day, visitor_dims
from .fold import claim, position
from .models import HourlyPage, HourlyProperty, HourlyRule, HourlyTotals, VisitorSketch
from .write import write


def forget_deleted(session: Session, deleted: DeletedEvents) -> None:
    """Take events that are about to be deleted out of the rollups, in the deleting
    transaction (an erasure or a retention cut-off corrects the reports at once).

    Only events the fold has counted (id up to the cursor) are subtracted; the cursor's
    version moves on, so a fold that read the doomed events meanwhile on another host starts
    over without them. Counts and revenue are exact after this, and a row left at zero is
    deleted (a fold of the remaining events makes none). Visitor sketches cannot
    forget one visitor (they hold hashed registers, no identifier): the sketches of the
    hours, days and weeks the deleted events touched are recomputed from the events that
    stay (``refresh_sketches``), so estimated visitors are right at once too.
    """
    if deleted.where is None or deleted.only_test:  # test events were never counted
        return
    connection = session.connection()
    dialect = connection.dialect.name
    seen = position(connection)
    last_id = seen.last_event_id
    taken = Accumulator(sketching=False)
    for row in connection.execute(
        select(*fold_columns(dialect)).where(deleted.where, Event.id <= last_id)
    ):
        taken.add(row)
    taken.sketches_by_key()  # collects the (site, hour, dim) keys, builds no sketch
    taken.negate()
    if not claim(connection, seen, None):
        raise RuntimeError("the report summaries changed meanwhile; try again")
    write(connection, taken, {}, dialect)
    drop_empty(connection, taken)
    refresh_sketches(connection, taken.visitor_keys, deleted.where, last_id)


def drop_empty(connection, taken: Accumulator) -> None:
    """Delete the rollup rows that no event counts in any more, over the hours and days
    `taken` (the events taken out) touched: a few statements, each a range of the keys."""
    spans: dict[int, list[datetime]] = defaultdict(list)
    for site, hour in taken.totals:
        spans[site].append(hour)
    keys: dict[int, set[str]] = defaultdict(set)
    for site, key, *_ in taken.properties:
        keys[site].add(key)
    for site, hours in spans.items():
        low, high = min(hours).replace(hour=0), max(hours)
        for model, count in (
            (HourlyTotals, "events"),
            (HourlyRule, "conversions"),
            (HourlyPage, "events"),
            (HourlyProperty, "events"),
        ):
            if model is HourlyProperty and not keys[site]:
                continue
            table = cast(Table, model.__table__)
            where = [table.c.site_id == site, table.c.hour.between(low, high), table.c[count] == 0]
            if model is not HourlyTotals:
                where.append(table.c.hours.in_([1, 24]))  # the key's order: site, hours, hour
            if model is HourlyProperty:  # the key's order: site, key, hours, hour
                where.append(table.c.key.in_(sorted(keys[site])))
            connection.execute(delete(table).where(*where))


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as [start, end) runs of consecutive hours."""
    out: list[list[datetime]] = []
    for hour in hours:
        if out and out[-1][1] == hour:
            out[-1][1] = hour + timedelta(hours=1)
        else:
            out.append([hour, hour + timedelta(hours=1)])
    return [(a, b) for a, b in out]


def _put_sketches(connection, found: dict[tuple, bytes | None]) -> None:
    """Store sketches by key (site, hours, dim, start); delete those whose bytes are None.
    One statement of each kind, run for every key (a retention cut-off refreshes
    thousands)."""
    s = VisitorSketch
    keys = ("site_id", "hours", "dim", "start")
    gone = [dict(zip(keys, key, strict=True)) for key, data in found.items() if data is None]
    if gone:
        table = cast(Table, s.__table__)
        connection.execute(
            delete(table).where(*(table.c[name] == bindparam(f"k_{name}") for name in keys)),
            [{f"k_{name}": value for name, value in row.items()} for row in gone],
        )
    kept = [
        {**dict(zip(keys, key, strict=True)), "sketch": data}
        for key, data in found.items()
        if data is not None
    ]
    if kept:
        statement = dialect_insert(s.__table__, connection.dialect.name)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=list(keys), set_={"sketch": statement.excluded.sketch}
            ),
            kept,
        )


def _merged_spans(
    connection, site: int, hours: int, wanted: set[tuple[str, datetime]], length: timedelta
) -> dict[tuple, bytes | None]:
    """For each (dim, start) wanted, the union of the dimension's stored sketches of `hours`
    in [start, start + length) (None when there is none), by key (site, hours of the
    union, dim, start): one read of the span they cover per 500 dimensions."""
    s = VisitorSketch
    low = min(start for _, start in wanted)
    high = max(start for _, start in wanted) + length
    dims = sorted({dim for dim, _ in wanted})
    parts: dict[tuple[str, datetime], list[bytes]] = defaultdict(list)
    for offset in range(0, len(dims), 500):
        for dim, start, data in connection.execute(
            select(s.dim, s.start, s.sketch).where(
                s.site_id == site,
                s.hours == hours,
                s.dim.in_(dims[offset : offset + 500]),
                s.start >= low,
                s.start < high,
            )
        ):
            holding = (dim, _span_start(start, length))
            if holding in wanted:
                parts[holding].append(data)
    span = {timedelta(days=1): 24, timedelta(days=7): 168}[length]
    return {
        (site, span, dim, start): sketches.union(parts[(dim, start)])
        if parts.get((dim, start))
        else None
        for dim, start in wanted
    }


def _span_start(moment: datetime, length: timedelta) -> datetime:
    """The start of the day (length one day) or of the week from Monday holding `moment`."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if length == timedelta(days=1) else day - timedelta(days=day.weekday())


def refresh_sketches(connection, keys: set, gone, last_id: int) -> None:
    """Recompute the visitor sketches of `keys` ((site, hour, dim)), of their days and of
    their weeks, from the counted events up to `last_id` that `gone` (SQL: the events being
    deleted, still readable) does not select.

    Hours are counted again from their raw events (a bounded read: the hours the deleted
    events fell in); a day is the union of its hour sketches and a week of its day sketches,
    which HyperLogLog gives exactly (a union keeps the larger of each register).
    """
    if not keys:
        return
    dialect = connection.dialect.name
    by_site: dict[int, set] = defaultdict(set)
    for site, hour, dim in keys:
        by_site[site].add((hour, dim))
    for site, wanted in by_site.items():
        hours = sorted({hour for hour, _dim in wanted})
        seen: dict[tuple, set] = defaultdict(set)
        cache: dict = {}
        occurred = fold_columns(dialect)[8]
        for start, end in _runs(hours):
            rows = connection.execute(
                select(Event.visitor_id, Event.event_name, Event.name, Event.page_path, occurred)
                .where(Event.site_id == site, Event.occurred_at >= start, Event.occurred_at < end)
                .where(Event.id <= last_id, Event.counted(), Event.visitor_id.not_like("a:%"))
                .where(~gone)
            )
            for visitor, kind, name, page, at in rows:
                hour = hour_and_day(at, cache)[0]
                for dim in visitor_dims(kind, name, page):
                    if (hour, dim) in wanted:
                        seen[(hour, dim)].add(visitor)
        _put_sketches(
            connection,
            {
                (site, 1, dim, hour): sketches.of_ids(ids)
                if (ids := seen.get((hour, dim)))
                else None
                for hour, dim in wanted
            },
        )
        days = {(dim, hour.replace(hour=0)) for hour, dim in wanted}
        _put_sketches(connection, _merged_spans(connection, site, 1, days, timedelta(days=1)))
        weeks = {(dim, day - timedelta(days=day.weekday())) for dim, day in days}
        _put_sketches(connection, _merged_spans(connection, site, 24, weeks, timedelta(days=7)))
