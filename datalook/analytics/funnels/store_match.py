"""An unsaved funnel computed with DuckDB over the columnar copy of the events (store).

The copy's rows of the range and the window after it (store.events_relation: exactly the
counted events, whatever the copy holds yet) are given their step masks in SQL, then:

- Visitors with two matching events at one instant go to the matching in Python
  (matching.visitor_progress: which of the tied events takes which step is where the
  semantics are subtle). They are few.
- For every other visitor the matching is plain: with no two matching events at one
  instant, a chain's steps are at strictly rising times, and step k+1 is the first event
  matching it after step k (the earliest is never worse), no later than step 1 plus the
  window. Each step-1 event in the range starts a chain, found by one ASOF join per step;
  the visitor counts at the furthest chain, the earliest start first (time, then id), as
  matching.match_visitor picks it.

The per-step counts and revenue are summed in SQL (exact integers), and the medians taken
from the gaps exactly as statistics.median takes them. A definition this cannot express
(strict mode, a property step) is computed as before (unsaved.event_rows).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter

import duckdb
import numpy as np

from ..store.read import connect, events_relation
from .definition import FunnelDefinition, Step
from .matching import visitor_progress
from .report import FunnelReport, gap_micros, report_from_figures


def expressible(definition: FunnelDefinition) -> bool:
    """Whether the funnel is computed here: ordered mode, no property step."""
    return definition.mode == "ordered" and all(
        step.property_key is None for step in definition.steps
    )


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
    return "(" + " AND ".join(parts) + ")"


def _masked_sql(definition: FunnelDefinition, params: dict) -> str:
    """SQL of the rows that match a step, with their step masks."""
    bits = " + ".join(
        f"(CASE WHEN {_step_sql(step, k, params)} THEN {1 << k} ELSE 0 END)"
        for k, step in enumerate(definition.steps)
    )
    return f"""
        SELECT visitor, has_visitor, ts, id, micros, mask
        FROM (SELECT visitor, has_visitor, ts, id, micros, {bits} AS mask FROM events)
        WHERE mask <> 0
    """  # noqa: S608 - step values are parameters


def _chains_sql(steps: int) -> str:
    """SQL: per visitor (none tied) the furthest chain, the earliest start first, with the
    time (t<k>) and value (v<k>) of each step reached and its depth."""
    parts = [
        """s1 AS (SELECT visitor, ts AS t1, id AS id1, micros AS v1 FROM plain
                  WHERE mask & 1 <> 0 AND ts >= $start AND ts < $end)"""
    ]
    for k in range(2, steps + 1):
        within = f"c.t{k - 1} IS NOT NULL AND e.ts <= c.t1 + to_microseconds($window)"
        parts.append(
            f"""e{k} AS (SELECT visitor, ts, micros FROM plain WHERE mask & {1 << (k - 1)} <> 0),
            s{k} AS (
                SELECT c.*, CASE WHEN {within} THEN e.ts END AS t{k},
                       CASE WHEN {within} THEN e.micros END AS v{k}
                FROM s{k - 1} c ASOF LEFT JOIN e{k} e
                ON c.visitor = e.visitor AND c.t{k - 1} < e.ts
            )"""  # noqa: S608 - numbers only
        )
    depth = " + ".join(["1", *(f"(t{k} IS NOT NULL)::INTEGER" for k in range(2, steps + 1))])
    return f"""
        WITH plain AS (
            SELECT * FROM masked WHERE has_visitor AND visitor NOT IN (SELECT visitor FROM tied)
        ),
        {", ".join(parts)}
        SELECT *, {depth} AS depth FROM s{steps}
        QUALIFY row_number() OVER (PARTITION BY visitor ORDER BY depth DESC, t1, id1) = 1
    """  # noqa: S608 - numbers only


def store_report(
    site_id: int, definition: FunnelDefinition, start: datetime, end: datetime
) -> FunnelReport:
    """The funnel over [start, end) (UTC, naive) from the copy of the events: the same
    report as report.compute over unsaved.event_rows (an expressible definition)."""
    con = connect()
    try:
        events = events_relation(con, site_id, start, end + definition.window)
        return _report(con, events, definition, start, end)
    finally:
        con.close()


def _report(
    con: duckdb.DuckDBPyConnection,
    events: duckdb.DuckDBPyRelation,
    definition: FunnelDefinition,
    start: datetime,
    end: datetime,
) -> FunnelReport:
    """The report of the rows of `events` (the range and the window after it)."""
    n = len(definition.steps)
    params: dict = {}
    con.register("events", events)
    con.execute(f"CREATE TEMP TABLE masked AS {_masked_sql(definition, params)}", params)
    in_range = {"start": start, "end": end}
    excluded = con.execute(
        "SELECT count(*) FROM masked WHERE NOT has_visitor AND ts >= $start AND ts < $end",
        in_range,
    ).fetchone() or (0,)
    con.execute(
        """CREATE TEMP TABLE tied AS SELECT DISTINCT visitor FROM masked WHERE has_visitor
           GROUP BY visitor, ts HAVING count(*) > 1"""
    )
    window_us = definition.window // timedelta(microseconds=1)
    con.execute(f"CREATE TEMP TABLE best AS {_chains_sql(n)}", {**in_range, "window": window_us})
    sums = ", ".join(
        f"count(*) FILTER (WHERE depth >= {k}), "
        f"coalesce(sum(coalesce(v{k}, 0)) FILTER (WHERE depth >= {k}), 0)"
        for k in range(1, n + 1)
    )
    found = con.execute(f"SELECT {sums} FROM best").fetchone() or ()  # noqa: S608
    visitors = [int(found[2 * k]) for k in range(n)]
    revenue = [int(found[2 * k + 1]) for k in range(n)]
    gaps: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    for k in range(2, n + 1):
        gaps.append(
            con.execute(
                f"SELECT epoch_us(t{k}) - epoch_us(t{k - 1}) AS gap FROM best WHERE depth >= {k}"  # noqa: S608
            ).fetchnumpy()["gap"]
        )
    tied_gaps = _add_tied(con, definition, start, end, visitors, revenue)
    medians = [_median_seconds(np.concatenate([gaps[k], tied_gaps[k]])) for k in range(n)]
    return report_from_figures(definition, visitors, revenue, medians, int(excluded[0]))


def _add_tied(
    con: duckdb.DuckDBPyConnection,
    definition: FunnelDefinition,
    start: datetime,
    end: datetime,
    visitors: list[int],
    revenue: list[int],
) -> list[np.ndarray]:
    """Match the tied visitors in Python and add them to `visitors` and `revenue`; their
    gaps per step (microseconds)."""
    n = len(definition.steps)
    rows = con.execute(
        """SELECT visitor, ts, id, mask, micros FROM masked
           WHERE visitor IN (SELECT visitor FROM tied) ORDER BY visitor, ts, id"""
    ).fetchall()
    grouped = {
        visitor: [row[1:] for row in group] for visitor, group in groupby(rows, itemgetter(0))
    }
    gaps: dict[int, list[int]] = defaultdict(list)
    for progress in visitor_progress(definition, grouped, start, end).values():
        for k in range(progress.depth):
            visitors[k] += 1
            revenue[k] += progress.values[k] or 0
            if k:
                gaps[k].append(gap_micros(progress.times[k - 1], progress.times[k]))
    return [np.array(gaps[k], dtype=np.int64) for k in range(n)]


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
