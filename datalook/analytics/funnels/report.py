"""The funnel report: its rows, the per-step totals, and the report of visitors' progress."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from ..backlog import Freshness
from ..money import decimal_string
from ..visitor_ids import is_visitor
from .definition import FunnelDefinition
from .matching import (
    NOT_ENTERED,
    Progress,
    VisitorEvent,
    match_visitor,
    visitor_progress,
)


@dataclass(frozen=True)
class StepResult:
    """One row of the report."""

    label: str
    visitors: int
    conversion_from_start: float
    conversion_from_previous: float
    median_seconds_from_previous: float | None
    revenue_micros: int


@dataclass(frozen=True)
class FunnelReport:
    """The whole report: a row per step and the events left out."""

    steps: tuple[StepResult, ...]
    excluded_events_without_visitor: int

    def as_json(self, currency: str) -> dict:
        """The JSON answer of funnel.json and funnels/<id>.json; money as stats.json writes
        it in the site's `currency` (exact, at least its minor digits: "1250" in JPY)."""
        return {
            "steps": [
                {
                    "label": s.label,
                    "visitors": s.visitors,
                    "conversion_from_start": s.conversion_from_start,
                    "conversion_from_previous": s.conversion_from_previous,
                    "median_seconds_from_previous": s.median_seconds_from_previous,
                    "revenue": decimal_string(s.revenue_micros, currency),
                }
                for s in self.steps
            ],
            "excluded_events_without_visitor": self.excluded_events_without_visitor,
        }


class FunnelAnswer(NamedTuple):
    """A funnel report and how current the figures it was read from are."""

    report: FunnelReport
    freshness: Freshness

    def as_json(self, currency: str) -> dict:
        """The JSON answer of funnel.json and funnels/<id>.json, with its `freshness`."""
        return {**self.report.as_json(currency), "freshness": self.freshness.as_json()}


def _ratio(part: int, whole: int) -> float:
    """part / whole, 0.0 for an empty whole."""
    return part / whole if whole else 0.0


@dataclass
class StepTotals:
    """What the report needs per step: visitors, revenue, and the gaps for the median."""

    visitors: list[int]
    revenue: list[int]
    gaps_micros: list[list[int]]

    @classmethod
    def empty(cls, steps: int) -> StepTotals:
        """Totals of no visitor."""
        return cls([0] * steps, [0] * steps, [[] for _ in range(steps)])

    def add(self, progress: Progress) -> None:
        """Count one visitor's progress."""
        for k in range(progress.depth):
            self.visitors[k] += 1
            self.revenue[k] += progress.values[k] or 0
            if k:
                self.gaps_micros[k].append(gap_micros(progress.times[k - 1], progress.times[k]))


def gap_micros(earlier: datetime, later: datetime) -> int:
    """Whole microseconds from one step to the next (exact, so every path agrees)."""
    return (later - earlier) // timedelta(microseconds=1)


def report_from_totals(
    definition: FunnelDefinition, totals: StepTotals, excluded: int
) -> FunnelReport:
    """The per-step report from the totals."""
    medians = [statistics.median(gaps) / 1_000_000 if gaps else None for gaps in totals.gaps_micros]
    return report_from_figures(definition, totals.visitors, totals.revenue, medians, excluded)


def report_from_figures(
    definition: FunnelDefinition,
    reached: Sequence[int],
    revenue: Sequence[int],
    medians: Sequence[float | None],
    excluded: int,
) -> FunnelReport:
    """The per-step report from each step's visitors, revenue and median gap (seconds)."""
    rows = []
    for k, step in enumerate(definition.steps):
        rows.append(
            StepResult(
                label=step.label,
                visitors=reached[k],
                conversion_from_start=1.0 if k == 0 else _ratio(reached[k], reached[0]),
                conversion_from_previous=1.0 if k == 0 else _ratio(reached[k], reached[k - 1]),
                median_seconds_from_previous=medians[k],
                revenue_micros=revenue[k],
            )
        )
    return FunnelReport(tuple(rows), excluded)


def summarise(
    definition: FunnelDefinition, progresses: Iterable[Progress], excluded: int
) -> FunnelReport:
    """Turn each visitor's progress into the per-step report."""
    totals = StepTotals.empty(len(definition.steps))
    for progress in progresses:
        totals.add(progress)
    return report_from_totals(definition, totals, excluded)


def compute(
    definition: FunnelDefinition,
    rows: Iterable[tuple],
    range_start: datetime,
    range_end: datetime,
) -> FunnelReport:
    """The report from rows grouped by visitor, each visitor's rows in time order.

    Rows are MatchRows or plain tuples in their order (seq, visitor, at, mask, value).
    Rows without a visitor are only counted (those in the range). A visitor without a
    step-1 event in the range takes no part; one with no event that can be step 2 is at
    step 1 from the earliest step-1 event in the range (rows come in time order), as
    match_visitor would find; only the others go through the matching.
    """
    n = len(definition.steps)
    totals = StepTotals.empty(n)
    excluded = 0
    for visitor, group in groupby(rows, key=itemgetter(1)):
        if not is_visitor(visitor):
            excluded += sum(1 for r in group if r[3] and range_start <= r[2] < range_end)
            continue
        events = list(group)
        entry = _first_entry(events, range_start, range_end)
        if entry is NOT_ENTERED:
            continue
        if not any(r[3] & 2 for r in events):
            totals.add(entry)
            continue
        matched = [VisitorEvent(r[2], r[0], r[3], r[4]) for r in events]
        totals.add(
            match_visitor(matched, n, definition.window, definition.mode, range_start, range_end)
        )
    return report_from_totals(definition, totals, excluded)


def _first_entry(events: Sequence[tuple], range_start: datetime, range_end: datetime) -> Progress:
    """Step 1 from the earliest step-1 event in the range, of MatchRow-ordered tuples in
    time order."""
    for _seq, _visitor, at, mask, value in events:
        if mask & 1 and range_start <= at < range_end:
            return Progress(1, (at,), (value,))
    return NOT_ENTERED


def compute_visitors(
    definition: FunnelDefinition,
    grouped: Mapping[str, list[tuple]],
    excluded: int,
    range_start: datetime,
    range_end: datetime,
) -> FunnelReport:
    """The report from each visitor's events, (time, seq, mask, value) in any order."""
    progress = visitor_progress(definition, grouped, range_start, range_end)
    return summarise(definition, progress.values(), excluded)
