"""Taking deleted events out of the report summaries (an erasure or a retention cut-off).

A subscriber of erasure.ON_EVENTS_DELETED (the contract: analytics.deletions): it runs in
the deleting transaction, before the DELETE, while the doomed events are still readable.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ...models import Event
from ...sql.connections import dialect_insert
from .. import sketches
from ..deletions import DeletedEvents
from .accumulate import Accumulator, fold_columns, hour_and_day, visitor_dims
from .fold import claim, position
from .models import VisitorSketch
from .write import write


def forget_deleted(session: Session, deleted: DeletedEvents) -> None:
    """Take events that are about to be deleted out of the rollups, in the deleting
    transaction (an erasure or a retention cut-off corrects the reports at once).

    Only events the fold has counted (id up to the cursor) are subtracted; the cursor's
    version moves on, so a fold that read the doomed events meanwhile on another host starts
    over without them. Counts and revenue are exact after this. Visitor sketches cannot
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
    refresh_sketches(connection, taken.visitor_keys, deleted.where, last_id)


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as [start, end) runs of consecutive hours."""
    out: list[list[datetime]] = []
    for hour in hours:
        if out and out[-1][1] == hour:
            out[-1][1] = hour + timedelta(hours=1)
        else:
            out.append([hour, hour + timedelta(hours=1)])
    return [(a, b) for a, b in out]


def _put_sketch(connection, key: tuple, data: bytes | None) -> None:
    """Store one sketch (site, hours, dim, start), or delete it when `data` is None."""
    site, hours, dim, start = key
    s = VisitorSketch
    if data is None:
        connection.execute(
            delete(s).where(s.site_id == site, s.hours == hours, s.dim == dim, s.start == start)
        )
        return
    statement = dialect_insert(s.__table__, connection.dialect.name)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["site_id", "hours", "dim", "start"],
            set_={"sketch": statement.excluded.sketch},
        ),
        {"site_id": site, "hours": hours, "dim": dim, "start": start, "sketch": data},
    )


def _merged_span(connection, site: int, hours: int, dim: str, start: datetime, end: datetime):
    """The union of a dimension's stored sketches of one span size in [start, end)."""
    s = VisitorSketch
    stored = connection.execute(
        select(s.sketch).where(
            s.site_id == site, s.hours == hours, s.dim == dim, s.start >= start, s.start < end
        )
    ).scalars()
    found = list(stored)
    return sketches.union(found) if found else None


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
        for hour, dim in wanted:
            ids = seen.get((hour, dim))
            _put_sketch(connection, (site, 1, dim, hour), sketches.of_ids(ids) if ids else None)
        days = {(hour.replace(hour=0), dim) for hour, dim in wanted}
        for day, dim in days:
            merged = _merged_span(connection, site, 1, dim, day, day + timedelta(days=1))
            _put_sketch(connection, (site, 24, dim, day), merged)
        weeks = {(day - timedelta(days=day.weekday()), dim) for day, dim in days}
        for week, dim in weeks:
            merged = _merged_span(connection, site, 24, dim, week, week + timedelta(days=7))
            _put_sketch(connection, (site, 168, dim, week), merged)
