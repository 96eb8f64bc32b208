"""An unsaved funnel computed with DuckDB over the columnar copy of the events (store).

The copy's rows of the range and the window after it (store.events_relation: exactly the
counted events, whatever the copy holds yet) are given their step masks in SQL, and the
matching rows of the visitors come back sorted by visitor, time and id, as arrays:

- Visitors with two matching events at one instant go to the matching in Python
  (matching.visitor_progress: which of the tied events takes which step is where the
  semantics are subtle). They are few.
- For every other visitor the matching is plain: with no two matching events at one
  instant, a chain's steps are at strictly rising times, and step k+1 is the visitor's
  first row matching it after step k's (the earliest is never worse), no later than step
  1 plus the window. Every step-1 row in the range starts a chain, all of them at once,
  a step at a time (a binary search in each step's rows); the visitor counts at the
  furthest chain, the earliest start first (time, then id), as matching.match_visitor
  picks it.

The per-step counts and revenue are exact integers, and the medians are taken from the
gaps exactly as statistics.median takes them. A definition this cannot express (strict
mode, a property step) is computed as before (unsaved.event_rows), and so is any funnel
while the copy is far behind the events (copy_ready).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...models import Event
from .. import cursors
from ..backlog import newest_id
from ..store.build import Segment
from ..store.invalidate import CURSOR
from ..store.read import connect, own_events_sql, store_directory, uncovered, usable_segments
from . import chains
from .definition import FunnelDefinition, Step
from .matching import visitor_progress
from .report import FunnelReport, gap_micros, report_from_figures


def _step_sql(step: Step, k: int, params: dict) -> str:
    """SQL over the copy's columns: whether a row satisfies `step` (Step.matches, exactly:
    a prefix is compared as a prefix, case and all)."""
    params[f"kind{k}"] = step.event_name
    parts = [f"kind = $kind{k}"]
    if step.page_path is not None:
        prefix = step.path_prefix
        params[f"page{k}"] = prefix if prefix is not None else step.page_path
        parts.append(f"starts_with(page, $page{k})" if prefix is not None else f"page = $page{k}")
    if step.name is not None:
        params[f"name{k}"] = step.name
        parts.append(f"name = $name{k}")
    if step.property_key is not None:  # narrowed as clauses.step_clause does, then checked
        parts.append("properties IS NOT NULL")
        quoted = json.dumps(step.property_key, ensure_ascii=False)
        if quoted[1:-1] == step.property_key:
            params[f"key{k}"] = quoted
            parts.append(f"contains(properties, $key{k})")
    return "(" + " AND ".join(parts) + ")"


def _masked_sql(definition: FunnelDefinition, params: dict, source: str = "events") -> str:
    """SQL of the rows the funnel reads from `source` (a table, view or subquery of the
    copy's columns), with their step masks (a property step's bit still to be checked):
    those that may match a step; in strict mode every row (what lies between the steps
    matters)."""
    steps = [_step_sql(step, k, params) for k, step in enumerate(definition.steps)]
    bits = " + ".join(f"(CASE WHEN {sql} THEN {1 << k} ELSE 0 END)" for k, sql in enumerate(steps))
    checked = ", kind, page, name, properties" if _property_bits(definition) else ""
    kept = narrowed = ""
    if definition.mode != "strict":
        kept = "WHERE mask <> 0"
        # The same condition as a filter below the masks: every step asks for a kind, which
        # the scan itself applies, and the masks are computed for the matching rows only.
        kinds = ", ".join(f"$kind{k}" for k in range(len(steps)))
        narrowed = f"WHERE kind IN ({kinds}) AND ({' OR '.join(steps)})"
    return f"""
        SELECT visitor, has_visitor, ts, id, micros, mask{checked}
        FROM (SELECT *, {bits} AS mask FROM {source} {narrowed})
        {kept}
    """  # noqa: S608 - step values are parameters


def _property_bits(definition: FunnelDefinition) -> list[tuple[int, Step]]:
    """(bit, step) of each property step."""
    return [(1 << k, s) for k, s in enumerate(definition.steps) if s.property_key is not None]


def _check_properties(con: duckdb.DuckDBPyConnection, definition: FunnelDefinition) -> None:
    """Clear each property step's bit where Step.matches says no (SQL only narrowed it)."""
    for bit, step in _property_bits(definition):
        found = con.execute(
            f"SELECT id, kind, page, name, properties FROM masked WHERE mask & {bit} <> 0"  # noqa: S608
        ).fetchall()
        failing = [row[0] for row in found if not step.matches(*row[1:])]
        if failing:
            con.register("failing", pa.table({"id": pa.array(failing, pa.int64())}))
            con.execute(
                f"UPDATE masked SET mask = mask & ~{bit} WHERE id IN (SELECT id FROM failing)"  # noqa: S608
            )
            con.unregister("failing")


# The copy answers while the store's cursor is at most this many events behind the newest
# (the fold process keeps it a tick behind) and its rows not yet in a segment, read from
# the events one by one, are at most this many: further behind (a backlog, a store not
# built yet), the funnel is read as before, within a report's budget.
LAG_LIMIT = 5_000
UNCOVERED_LIMIT = 20_000


def copy_ready(session: Session, site_id: int, start: datetime, end: datetime) -> bool:
    """Whether the copy answers [start, end) of the site at once (see LAG_LIMIT)."""
    return ready_segments(session, site_id, start, end) is not None


def ready_segments(
    session: Session, site_id: int, start: datetime, end: datetime
) -> list[Segment] | None:
    """The segments to read [start, end) of the site from (usable_segments) when the copy
    answers it at once (copy_ready), else None."""
    seen = cursors.DERIVED.read(session, CURSOR)
    if seen is None or newest_id(session) - seen.last_event_id > LAG_LIMIT:
        return None
    chosen = usable_segments(store_directory(), site_id, start, end)
    left = UNCOVERED_LIMIT
    for a, b in uncovered(start, end, chosen):
        inside = (
            select(Event.id)
            .where(Event.site_id == site_id, Event.occurred_at >= a, Event.occurred_at < b)
            .where(Event.counted())
            .limit(left + 1)
            .subquery()
        )
        left -= session.execute(select(func.count()).select_from(inside)).scalar_one()
        if left < 0:
            return None
    return chosen


def store_report(
    site_id: int,
    definition: FunnelDefinition,
    start: datetime,
    end: datetime,
    chosen: list[Segment] | None = None,
) -> FunnelReport:
    """The funnel over [start, end) (UTC, naive) from the copy of the events: the same
    report as report.compute over unsaved.event_rows (an expressible definition).
    `chosen`: ready_segments' segments of the range and the window after it, if known."""
    con = connect()
    try:
        source = own_events_sql(con, site_id, start, end + definition.window, chosen)
        return _report(con, source, definition, start, end)
    finally:
        con.close()


def _report(
    con: duckdb.DuckDBPyConnection,
    source: str,
    definition: FunnelDefinition,
    start: datetime,
    end: datetime,
) -> FunnelReport:
    """The report of the rows of `source` (SQL of the range and the window after it)."""
    mask_rows(con, source, definition)
    in_range = {"start": start, "end": end}
    excluded = con.execute(
        """SELECT count(*) FROM masked
           WHERE NOT has_visitor AND mask <> 0 AND ts >= $start AND ts < $end""",
        in_range,
    ).fetchone() or (0,)
    rows = _visitor_rows(con, definition.mode == "strict")
    figures = _Figures.empty(len(definition.steps))
    if definition.mode == "strict":  # no ties to weigh: the very next row, in id order
        _add_chains(rows, np.zeros(len(rows.at), dtype=bool), definition, start, end, figures)
    else:
        tied = rows.tied()
        _add_chains(rows, tied, definition, start, end, figures)
        _add_tied(rows, tied, definition, start, end, figures)
    medians = [_median_seconds(np.concatenate(gaps)) for gaps in figures.gaps]
    return report_from_figures(
        definition, figures.visitors, figures.revenue, medians, int(excluded[0])
    )


# The rows the matching reads: the visitors' rows that match a step (every row in strict
# mode), with their visitor's 64-bit hash.
_VISITOR_ROWS = """
    SELECT hash(visitor) AS who, epoch_us(ts) AS at, id, mask, coalesce(micros, 0) AS value
    FROM masked WHERE has_visitor AND (mask <> 0 OR $strict)
"""
_VISITORS = (
    "SELECT count(DISTINCT visitor) FROM masked WHERE has_visitor AND (mask <> 0 OR $strict)"
)
# The same rows sorted by DuckDB, `new` marking each visitor's first (slower; exact).
_SORTED_ROWS = """
    SELECT epoch_us(ts) AS at, id, mask, coalesce(micros, 0) AS value,
           visitor IS DISTINCT FROM lag(visitor) OVER w AS new
    FROM masked WHERE has_visitor AND (mask <> 0 OR $strict)
    WINDOW w AS (ORDER BY visitor, ts, id) ORDER BY visitor, ts, id
"""


def _visitor_rows(con: duckdb.DuckDBPyConnection, strict: bool) -> _Rows:
    """The rows the matching reads, by visitor, each visitor's in (time, id) order.

    Sorted by the visitors' 64-bit hashes (much faster than by their ids); two visitors
    sharing a hash (about n² / 2⁶⁵ among n) would merge, so the visitors are counted too,
    and on a difference the rows are sorted by the ids themselves.
    """
    args = {"strict": strict}
    found = con.execute(_VISITOR_ROWS, args).fetchnumpy()
    at = np.asarray(found["at"], dtype=np.int64)
    ids = np.asarray(found["id"], dtype=np.int64)
    order = np.lexsort((ids, at, np.asarray(found["who"])))
    who = np.asarray(found["who"])[order]
    new = np.r_[True, who[1:] != who[:-1]] if len(who) else np.zeros(0, dtype=bool)
    visitors = (con.execute(_VISITORS, args).fetchone() or (0,))[0]
    if int(new.sum()) != visitors:  # a shared hash: sorted by DuckDB, by the ids
        found = con.execute(_SORTED_ROWS, args).fetchnumpy()
        order = np.arange(len(found["at"]))
        at, ids = np.asarray(found["at"], dtype=np.int64), np.asarray(found["id"], np.int64)
        new = np.asarray(found["new"], dtype=bool)
    return _Rows(
        at[order],
        ids[order],
        np.asarray(found["mask"], dtype=np.int64)[order],
        np.asarray(found["value"], dtype=np.int64)[order],
        np.cumsum(new) - 1,
    )


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """Microseconds since the epoch of a naive UTC time (DuckDB's epoch_us)."""
    return (at - _EPOCH) // _MICROSECOND


class _Rows(NamedTuple):
    """The visitors' matching rows as arrays, by visitor, then time and id: `group` numbers
    the visitors from 0."""

    at: np.ndarray
    id: np.ndarray
    mask: np.ndarray
    value: np.ndarray
    group: np.ndarray

    def tied(self) -> np.ndarray:
        """Per row: whether its visitor has two matching rows at one instant."""
        return chains.tied_rows(self.at, self.group)


@dataclass
class _Figures:
    """Per step: visitors, revenue (exact integers) and the gaps from the step before."""

    visitors: list[int]
    revenue: list[int]
    gaps: list[list[np.ndarray]]

    @classmethod
    def empty(cls, steps: int) -> _Figures:
        """The figures of no visitor."""
        none = np.empty(0, dtype=np.int64)
        return cls([0] * steps, [0] * steps, [[none] for _ in range(steps)])


def _add_chains(
    rows: _Rows,
    tied: np.ndarray,
    definition: FunnelDefinition,
    start: datetime,
    end: datetime,
    figures: _Figures,
) -> None:
    """Add the visitors without ties: every chain at once (chains.follow), then per
    visitor the furthest."""
    at, mask = rows.at, rows.mask
    within = (at >= _micros(start)) & (at < _micros(end))
    starts = np.flatnonzero((mask & 1 != 0) & within & ~tied)
    if not len(starts):
        return
    strict = definition.mode == "strict"
    who, depth, picked = chains.follow(
        at, mask, rows.group, starts, len(definition.steps), definition.window, strict
    )
    # Per visitor the furthest chain, the earliest start first (starts are in that order).
    first = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
    deepest = np.maximum.reduceat(depth, first)
    counts = np.diff(np.r_[first, len(who)])
    best = np.flatnonzero(depth == np.repeat(deepest, counts))
    best = best[np.r_[True, who[best[1:]] != who[best[:-1]]]]
    reached = depth[best]
    for k in range(len(picked)):
        chosen = best[reached > k]
        figures.visitors[k] += len(chosen)
        figures.revenue[k] += _exact_sum(rows.value[picked[k][chosen]])
        if k:
            figures.gaps[k].append(at[picked[k][chosen]] - at[picked[k - 1][chosen]])


def _exact_sum(values: np.ndarray) -> int:
    """The sum of int64 values as an exact integer (in Python when int64 could overflow)."""
    if not len(values):
        return 0
    if int(np.abs(values).max()) < (1 << 62) // len(values):
        return int(values.sum())
    return sum(values.tolist())


def _add_tied(
    rows: _Rows,
    tied: np.ndarray,
    definition: FunnelDefinition,
    start: datetime,
    end: datetime,
    figures: _Figures,
) -> None:
    """Add the visitors with ties, matched in Python (matching.visitor_progress)."""
    chosen = np.flatnonzero(tied)
    values = rows.value[chosen].tolist()
    grouped = chains.tied_events(chosen, rows.group, rows.at, rows.id, rows.mask, values)
    gaps: dict[int, list[int]] = defaultdict(list)
    for progress in visitor_progress(definition, grouped, start, end).values():
        for k in range(progress.depth):
            figures.visitors[k] += 1
            figures.revenue[k] += progress.values[k] or 0
            if k:
                gaps[k].append(gap_micros(progress.times[k - 1], progress.times[k]))
    for k, found in gaps.items():
        figures.gaps[k].append(np.array(found, dtype=np.int64))


def _median_seconds(gaps: np.ndarray) -> float | None:
    """The median gap in seconds as statistics.median gives it over the integers (the mean
    of the two middle ones in exact integers, then divided), None for no gap."""
    if not len(gaps):
        return None
    ordered = np.sort(gaps)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return int(ordered[middle]) / 1_000_000
    return (int(ordered[middle - 1]) + int(ordered[middle])) / 2 / 1_000_000


def mask_rows(
    con: duckdb.DuckDBPyConnection,
    events: duckdb.DuckDBPyRelation | str,
    definition: FunnelDefinition,
) -> None:
    """Make the TEMP table `masked` of the rows of `events` (a relation, or SQL of them)
    with their step masks, property steps checked (as a report does; saved funnels'
    staging reads it too)."""
    params: dict = {}
    source = events if isinstance(events, str) else "events"
    if not isinstance(events, str):
        con.register("events", events)
    con.execute(f"CREATE TEMP TABLE masked AS {_masked_sql(definition, params, source)}", params)
    _check_properties(con, definition)
