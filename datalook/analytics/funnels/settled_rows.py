"""A derivation's rows for every event up to an id, computed at once from the columnar copy.

What the batch-by-batch catch-up (changes.derive_changes) leaves once it has taken every
event up to an id, computed in one pass instead: the copy's rows (store.events_relation,
exactly the counted events whatever the copy holds yet) up to that id get their step
masks in SQL (store_match's), the matching rows of the visitors come back sorted by
visitor, time and id, and

- every step-1 row starts an attempt; for a visitor without two matching rows at one
  instant the chains are followed for all of them at once, a step at a time (the next row
  matching the step, within the window: the earliest is never worse), as
  store_match does for a report; a visitor with such ties goes through
  matching.attempts in Python, as the catch-up does (they are few);
- of each visitor's attempts, the best of each local day is kept (changes.day_bests:
  the furthest, the earliest of those) and linked to the others (changes.attempt_links);
- events without a visitor are counted per UTC quarter hour.

Times come back as the text both databases take for a naive timestamp, so the rows can
be written as plain tuples (staging.write_rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...models import Event
from ..ranges import local_day
from ..store.read import connect, events_relation
from . import chains
from .changes import attempt_links, day_bests
from .definition import FunnelDefinition
from .matching import attempts
from .models import ATTEMPT_COLUMNS, NEVER_AFTER, NEVER_BEFORE
from .report import gap_micros
from .store_match import mask_rows

_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
_QUARTER_US = _HOUR_US // 4
_NEVER_BEFORE_US = (NEVER_BEFORE - _EPOCH) // _MICRO
_NEVER_AFTER_US = (NEVER_AFTER - _EPOCH) // _MICRO

#: funnel_events' columns after derivation_id, in the order of SettledRows.events.
EVENT_COLUMNS = ("event_id", "visitor_id", "occurred_at", "step_mask", "value_micros")
#: funnel_attempts' columns after derivation_id, in the order of SettledRows.attempts.
ATTEMPT_ROW_COLUMNS = (
    "start_event_id",
    "visitor_id",
    "started_at",
    "prev_ge",
    "next_gt",
    *ATTEMPT_COLUMNS,
)
#: funnel_excluded's columns after derivation_id (its id is the database's).
EXCLUDED_COLUMNS = ("bucket", "events")


@dataclass
class SettledRows:
    """A derivation's rows, as tables of the columns above (times as text)."""

    events: pa.Table
    attempts: pa.Table
    excluded: pa.Table


def timestamps_text(micros: np.ndarray) -> pa.Array:
    """Naive UTC times (microseconds since the epoch) as 'YYYY-MM-DD HH:MM:SS.ffffff': the
    text SQLite keeps for a DateTime and PostgreSQL parses as a timestamp."""
    moments = pa.array(np.asarray(micros, dtype=np.int64), pa.timestamp("us"))
    return pc.cast(moments, pa.string())  # six digits of the second always, as SQLite keeps


def compute(
    session: Session, site_id: int, definition: FunnelDefinition, tz: ZoneInfo, up_to_id: int
) -> SettledRows:
    """The rows of a derivation of `definition` (ordered mode) in `tz`'s days that has
    taken every event of the site up to `up_to_id` (reads only)."""
    first, last = session.execute(
        select(func.min(Event.occurred_at), func.max(Event.occurred_at)).where(
            Event.site_id == site_id
        )
    ).one()
    session.rollback()  # no read snapshot held while the copy is read
    con = connect()
    try:
        if first is None:
            return _rows(con, definition, tz, None)
        events = events_relation(con, site_id, first, last + _MICRO)
        return _rows(con, definition, tz, events.filter(f"id <= {int(up_to_id)}"))
    finally:
        con.close()


def _rows(con, definition: FunnelDefinition, tz: ZoneInfo, events) -> SettledRows:
    """The rows of the copy's rows `events` (None: no event)."""
    if events is None:
        con.execute(
            "CREATE TEMP TABLE masked (visitor VARCHAR, has_visitor BOOLEAN,"
            " ts TIMESTAMP, id BIGINT, micros BIGINT, mask BIGINT)"
        )
    else:
        mask_rows(con, events, definition)
    excluded = con.sql(
        f"""SELECT epoch_us(ts) // {_QUARTER_US} * {_QUARTER_US} AS bucket, count(*) AS n
            FROM masked WHERE NOT has_visitor AND mask <> 0 GROUP BY 1 ORDER BY 1"""  # noqa: S608
    ).to_arrow_table()
    matched = con.sql(
        """SELECT visitor, id, epoch_us(ts) AS at, mask, micros FROM masked
           WHERE has_visitor AND mask <> 0 ORDER BY visitor, ts, id"""
    ).to_arrow_table()
    at = matched.column("at").to_numpy()
    return SettledRows(
        events=pa.table(
            [
                matched.column("id"),
                matched.column("visitor"),
                timestamps_text(at),
                matched.column("mask").cast(pa.int32()),
                matched.column("micros"),
            ],
            names=list(EVENT_COLUMNS),
        ),
        attempts=_attempts(matched, definition, tz),
        excluded=pa.table(
            [
                timestamps_text(excluded.column("bucket").to_numpy()),
                excluded.column("n").cast(pa.int64()),
            ],
            names=list(EXCLUDED_COLUMNS),
        ),
    )


@dataclass
class _Matched:
    """The visitors' matching rows as arrays, by visitor, then time and id."""

    visitor: pa.ChunkedArray
    id: np.ndarray
    at: np.ndarray
    mask: np.ndarray
    value: np.ndarray  # 0 where `known` is False
    known: np.ndarray
    group: np.ndarray  # the visitors numbered from 0


def _matched(table: pa.Table) -> _Matched:
    """The arrays of the sorted matching rows."""
    visitor = table.column("visitor")
    if len(visitor):
        names = visitor.combine_chunks()
        changed = pc.not_equal(names.slice(1), names.slice(0, len(names) - 1))
        new = np.r_[True, changed.to_numpy(zero_copy_only=False)]
    else:
        new = np.zeros(0, dtype=bool)
    micros = table.column("micros")
    return _Matched(
        visitor,
        table.column("id").to_numpy(),
        table.column("at").to_numpy(),
        table.column("mask").to_numpy(),
        pc.fill_null(micros, 0).to_numpy(),
        pc.is_valid(micros).to_numpy(zero_copy_only=False),
        np.cumsum(new) - 1,
    )


def _attempts(table: pa.Table, definition: FunnelDefinition, tz: ZoneInfo) -> pa.Table:
    """Every visitor's kept attempts, linked: the arrays' way for visitors without ties,
    the catch-up's own for the others."""
    rows = _matched(table)
    tied = chains.tied_rows(rows.at, rows.group)
    plain = _plain_attempts(rows, tied, definition, tz)
    found = pa.concat_tables([plain, _tied_attempts(rows, tied, definition, tz)])
    # In the order of the widest index (the range's): its pages are then filled one after
    # the other as the rows are written, not each visited again and again.
    return found.sort_by([("started_at", "ascending"), ("start_event_id", "ascending")])


def local_days(micros: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """The local day (days since the epoch) in `tz` of each naive UTC time, as
    ranges.local_day gives it: the zone's offset is looked up once per hour, and a time in
    an hour where the offset changes is looked up by itself."""
    hours, inverse = np.unique(micros // _HOUR_US, return_inverse=True)
    offsets = np.zeros(len(hours), dtype=np.int64)
    steady = np.ones(len(hours), dtype=bool)
    for i, hour in enumerate(hours.tolist()):
        start = (_EPOCH + timedelta(hours=hour)).replace(tzinfo=UTC)
        before = start.astimezone(tz).utcoffset()
        after = (start + timedelta(hours=1) - _MICRO).astimezone(tz).utcoffset()
        steady[i] = before == after
        offsets[i] = (before or timedelta()) // _MICRO
    days = (micros + offsets[inverse]) // _DAY_US
    for i in np.flatnonzero(~steady[inverse]).tolist():
        moment = _EPOCH + int(micros[i]) * _MICRO
        days[i] = (local_day(moment, tz) - _EPOCH.date()).days
    return days


def _plain_attempts(
    rows: _Matched, tied: np.ndarray, definition: FunnelDefinition, tz: ZoneInfo
) -> pa.Table:
    """The kept attempts of the visitors without ties: every chain at once
    (chains.follow), then the best of each visitor's local day, linked."""
    at, mask = rows.at, rows.mask
    starts = np.flatnonzero((mask & 1 != 0) & ~tied)
    who, depth, picked = chains.follow(
        at, mask, rows.group, starts, len(definition.steps), definition.window
    )
    # The best of each run of one visitor's attempts on one local day: the furthest, the
    # earliest of those (starts are in time order), as changes.day_bests keeps it.
    best = np.zeros(0, dtype=np.int64)
    if len(starts):
        day = local_days(at[starts], tz)
        run = np.cumsum(np.r_[True, (who[1:] != who[:-1]) | (day[1:] != day[:-1])]) - 1
        deepest = np.maximum.reduceat(depth, np.flatnonzero(np.r_[True, run[1:] != run[:-1]]))
        best = np.flatnonzero(depth == deepest[run])
        best = best[np.r_[True, run[best[1:]] != run[best[:-1]]]]
    kept_depth, kept_who = depth[best], who[best]
    started = at[starts[best]]
    prev_ge, next_gt = _links(kept_who, kept_depth, started)
    columns: list = [
        rows.id[starts[best]],
        rows.visitor.take(pa.array(starts[best])),
        timestamps_text(started),
        timestamps_text(prev_ge),
        timestamps_text(next_gt),
        kept_depth,
    ]
    chosen = [np.where(kept_depth > k, picked[k][best], -1) for k in range(len(picked))]
    for k in range(1, 8):  # g2..g8: microseconds from step k to step k + 1
        reached = chosen[k] >= 0 if k < len(chosen) else np.zeros(len(best), dtype=bool)
        if not reached.any():
            columns.append(pa.nulls(len(best), pa.int64()))
            continue
        gap = at[chosen[k]] - at[chosen[k - 1]]
        columns.append(pa.array(gap, pa.int64(), mask=~reached))
    for k in range(8):  # v1..v8: the value of the event at step k + 1
        reached = chosen[k] >= 0 if k < len(chosen) else np.zeros(len(best), dtype=bool)
        known = reached & rows.known[chosen[k]] if reached.any() else reached
        value = rows.value[chosen[k]] if reached.any() else np.zeros(len(best), np.int64)
        columns.append(pa.array(value, pa.int64(), mask=~known))
    return pa.table(columns, names=list(ATTEMPT_ROW_COLUMNS))


def _links(who: np.ndarray, depth: np.ndarray, started: np.ndarray):
    """(prev_ge, next_gt) of each kept attempt (by visitor, in time order), as
    changes.attempt_links gives them: the start of the visitor's previous attempt at least
    as deep, and of their next deeper one."""
    n = len(depth)
    index = np.arange(n)
    prev_ge = np.full(n, _NEVER_BEFORE_US, dtype=np.int64)
    next_gt = np.full(n, _NEVER_AFTER_US, dtype=np.int64)
    for d in range(1, int(depth.max(initial=0)) + 1):
        mine = np.flatnonzero(depth == d)
        if not len(mine):
            continue
        latest = np.maximum.accumulate(np.where(depth >= d, index, -1))
        before = np.r_[-1, latest[:-1]][mine]
        ok = (before >= 0) & (who[np.maximum(before, 0)] == who[mine])
        prev_ge[mine[ok]] = started[before[ok]]
        deeper = np.where(depth >= d + 1, index, n)
        soonest = np.minimum.accumulate(deeper[::-1])[::-1]
        following = np.r_[soonest[1:], n][mine]
        ok = (following < n) & (who[np.minimum(following, n - 1)] == who[mine])
        next_gt[mine[ok]] = started[following[ok]]
    return prev_ge, next_gt


def _tied_attempts(
    rows: _Matched, tied: np.ndarray, definition: FunnelDefinition, tz: ZoneInfo
) -> pa.Table:
    """The kept attempts of the visitors with ties, matched as the catch-up matches them
    (matching.attempts, changes.day_bests and changes.attempt_links)."""
    chosen = np.flatnonzero(tied)
    values = [
        value if known else None
        for value, known in zip(
            rows.value[chosen].tolist(), rows.known[chosen].tolist(), strict=True
        )
    ]
    grouped = chains.tied_events(chosen, rows.group, rows.at, rows.id, rows.mask, values)
    visitor_of = {
        str(g): i for g, i in zip(rows.group[chosen].tolist(), chosen.tolist(), strict=True)
    }
    columns: dict[str, list] = {name: [] for name in ATTEMPT_ROW_COLUMNS}
    n, window = len(definition.steps), definition.window
    for group, events in grouped.items():
        found = list(
            day_bests(attempts(events, n, window, "ordered", NEVER_BEFORE, NEVER_AFTER), tz)
        )
        links = attempt_links([(a.times[0], a.depth) for a in found])
        for attempt, (prev_ge, next_gt) in zip(found, links, strict=True):
            columns["start_event_id"].append(attempt.seq)
            columns["visitor_id"].append(rows.visitor[visitor_of[group]].as_py())
            columns["started_at"].append(attempt.times[0])
            columns["prev_ge"].append(prev_ge)
            columns["next_gt"].append(next_gt)
            columns["depth"].append(attempt.depth)
            for k in range(2, 9):
                reached = k <= attempt.depth
                gap = gap_micros(attempt.times[k - 2], attempt.times[k - 1]) if reached else None
                columns[f"g{k}"].append(gap)
            for k in range(1, 9):
                columns[f"v{k}"].append(attempt.values[k - 1] if k <= attempt.depth else None)
    for name in ("started_at", "prev_ge", "next_gt"):
        micros = np.array([(t - _EPOCH) // _MICRO for t in columns[name]], dtype=np.int64)
        columns[name] = timestamps_text(micros)
    types = {"visitor_id": pa.string(), "started_at": pa.string()}
    types |= {"prev_ge": pa.string(), "next_gt": pa.string()}
    return pa.table(
        {
            name: pa.array(values, types.get(name, pa.int64()))
            if isinstance(values, list)
            else values
            for name, values in columns.items()
        }
    )
