"""Per-visitor funnel matching: how far each visitor got (pure: no database, no report)."""

# Semantics, stated on the report page and in the docs:
# - Counted per visitor (a `visitor_id` not starting with "a:"); events without a visitor
#   take no part and are counted in `excluded_events_without_visitor` (those in the range
#   that match a step).
# - A visitor enters with a step-1 event inside the date range. Step k+1 happens at or after
#   step k (a different event: one event satisfies at most one step; other events in
#   between are allowed), no later than step 1 plus the conversion window (the edge is
#   included); later steps may fall after the range's end.
# - Each visitor counts once, at the furthest step reached from any of their step-1 events
#   in the range; times and revenue come from the earliest step-1 event that reaches that
#   far.
# - Strict mode: each next step is the visitor's very next event (events at the same
#   instant in the order they were stored).

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from .definition import FunnelDefinition

# What the matching reads of an event, by position: (at, seq, mask, value), a VisitorEvent
# or a plain tuple in its order (a million of them is the common case at 10M events).
TimedEvent = tuple


class VisitorEvent(NamedTuple):
    """One event of a visitor as the matching sees it; `seq` orders equal times (events.id)."""

    at: datetime
    seq: int
    mask: int
    value_micros: int | None = None


@dataclass(frozen=True)
class Progress:
    """How far one visitor got: steps reached, and the time and value of each matched step."""

    depth: int
    times: tuple[datetime, ...] = ()
    values: tuple[int | None, ...] = ()


NOT_ENTERED = Progress(0)


@dataclass(frozen=True)
class Attempt(Progress):
    """How far one step-1 event got; `seq` is that event's id."""

    seq: int = 0


def match_visitor(
    events: Sequence[TimedEvent],
    steps: int,
    window: timedelta,
    mode: str,
    range_start: datetime,
    range_end: datetime,
) -> Progress:
    """The furthest step one visitor reached (pure: the funnel's whole semantics live here).

    `events` are the visitor's events (any order); in strict mode they must be all of them,
    with mask 0 for those that match no step. `range_end` is exclusive.
    """
    ordered = sorted(events)  # by time, then seq: an event id, never equal
    by_step = _StepIndex(ordered, steps)
    best: tuple[int, ...] = ()
    for index, at, deadline in _starts(by_step, window, range_start, range_end):
        if by_step.bound(at, deadline) <= len(best):
            # Not computed: it cannot beat the best. When no later start can either (a
            # step up to the next one has no event from here on), stop.
            if by_step.exhausted(at, len(best)):
                break
            continue
        chain = _chain(by_step, index, steps, deadline, mode)
        if len(chain) > len(best):  # the earliest of the furthest
            best = chain
            if len(best) == steps:
                break
    if not best:
        return NOT_ENTERED
    picked = [ordered[i] for i in best]
    return Progress(len(best), tuple(e[_AT] for e in picked), tuple(e[_VALUE] for e in picked))


def attempts(
    events: Sequence[TimedEvent],
    steps: int,
    window: timedelta,
    mode: str,
    starts_from: datetime,
    starts_before: datetime,
) -> Iterator[Attempt]:
    """Each step-1 event in [starts_from, starts_before) and how far it got, in time order."""
    ordered = sorted(events)  # by time, then seq: an event id, never equal
    for chain in _chains(
        _StepIndex(ordered, steps), steps, window, mode, starts_from, starts_before
    ):
        picked = [ordered[i] for i in chain]
        yield Attempt(
            len(chain),
            tuple(e[_AT] for e in picked),
            tuple(e[_VALUE] for e in picked),
            picked[0][_SEQ],
        )


# An event is read by position, as a VisitorEvent or a plain (at, seq, mask, value) tuple.
_AT, _SEQ, _MASK, _VALUE = range(4)


def _chains(
    by_step: _StepIndex,
    steps: int,
    window: timedelta,
    mode: str,
    starts_from: datetime,
    starts_before: datetime,
) -> Iterator[tuple[int, ...]]:
    """For each step-1 event in [starts_from, starts_before) of time-ordered events, the
    positions of the events of the furthest chain it starts."""
    for index, _, deadline in _starts(by_step, window, starts_from, starts_before):
        yield _chain(by_step, index, steps, deadline, mode)


def _starts(
    by_step: _StepIndex, window: timedelta, starts_from: datetime, starts_before: datetime
) -> Iterator[tuple[int, datetime, datetime]]:
    """(position, time, deadline) of each step-1 event in [starts_from, starts_before)."""
    ordered = by_step.ordered
    for index in by_step.positions[0]:
        at = ordered[index][_AT]
        if at < starts_from:
            continue
        if at >= starts_before:
            break
        yield index, at, at + window


def _chain(
    by_step: _StepIndex, index: int, steps: int, deadline: datetime, mode: str
) -> tuple[int, ...]:
    """The positions of the furthest chain the step-1 event at `index` starts."""
    if mode == "strict":
        return _strict_chain(by_step.ordered, index, steps, deadline)
    return _ordered_chain(by_step, (index,), steps, deadline)


class _StepIndex:
    """Per step, the positions (in time order) of the events matching it, and their times."""

    def __init__(self, ordered: Sequence[TimedEvent], steps: int) -> None:
        """Index the time-ordered events by the steps they match."""
        self.ordered = ordered
        masks = [event[_MASK] for event in ordered]
        self.positions: list[list[int]] = [
            [i for i, mask in enumerate(masks) if mask >> k & 1] for k in range(steps)
        ]
        self.times: list[list[datetime]] = [
            [ordered[i][_AT] for i in positions] for positions in self.positions
        ]

    def bound(self, start: datetime, deadline: datetime) -> int:
        """How far a chain starting at `start` can get at most: up to the first step with
        no event in [start, deadline]."""
        for k in range(1, len(self.times)):
            times = self.times[k]
            i = bisect_left(times, start)
            if i == len(times) or times[i] > deadline:
                return k
        return len(self.times)

    def exhausted(self, start: datetime, depth: int) -> bool:
        """Whether no chain starting at or after `start` can get past `depth` steps (a
        step up to depth + 1 has no event from `start` on)."""
        return any(not self.times[k] or self.times[k][-1] < start for k in range(1, depth + 1))


def _strict_chain(
    ordered: Sequence[TimedEvent], index: int, steps: int, deadline: datetime
) -> tuple[int, ...]:
    """Strict mode: each next step must be the visitor's next event, within the window."""
    chain = [index]
    while len(chain) < steps:
        nxt = chain[-1] + 1
        if nxt >= len(ordered):
            break
        event = ordered[nxt]
        if event[_AT] > deadline or not event[_MASK] >> len(chain) & 1:
            break
        chain.append(nxt)
    return tuple(chain)


def _ordered_chain(
    index: _StepIndex, chain: tuple[int, ...], steps: int, deadline: datetime
) -> tuple[int, ...]:
    """Ordered mode: the longest chain of unused events at or after each other.

    Taking the earliest next event is optimal, except among events at the same instant
    (one of them may be needed for a later step), so only those are tried one by one.
    """
    k = len(chain)
    if k == steps:
        return chain
    positions, times = index.positions[k], index.times[k]
    after = index.ordered[chain[-1]][_AT]
    candidates = []
    first_time = None
    for j in range(bisect_left(times, after), len(positions)):
        at = times[j]
        if at > deadline or (first_time is not None and at > first_time):
            break
        if positions[j] not in chain:
            first_time = at
            candidates.append(positions[j])
    best = chain
    for position in candidates:
        found = _ordered_chain(index, (*chain, position), steps, deadline)
        if len(found) > len(best):
            best = found
            if len(best) == steps:
                break
    return best


# ---------------------------------------------------------------- rows and visitors


class MatchRow(NamedTuple):
    """One event read for a funnel, in time order: who, when, which steps, what value."""

    seq: int
    visitor_id: str
    at: datetime
    mask: int
    value_micros: int | None


def visitor_progress(
    definition: FunnelDefinition,
    grouped: Mapping[str, list[tuple]],
    range_start: datetime,
    range_end: datetime,
) -> dict[str, Progress]:
    """How far each visitor got from their step-1 events in [range_start, range_end), of
    their events, (time, seq, mask, value) in any order; visitors who did not enter are
    left out.

    One with no event that can be step 2 is at step 1 from the earliest step-1 event in
    the range, as match_visitor would find; only the others go through the matching.
    """
    n = len(definition.steps)
    window, mode = definition.window, definition.mode
    found: dict[str, Progress] = {}
    for visitor, events in grouped.items():
        entry = None
        goes_on = False
        for event in events:
            mask = event[2]
            if mask & 1 and range_start <= event[0] < range_end:
                if entry is None or event[:2] < entry[:2]:
                    entry = event
            if mask & 2:
                goes_on = True
        if entry is None:
            continue
        if not goes_on:
            found[visitor] = Progress(1, (entry[0],), (entry[3],))
            continue
        found[visitor] = match_visitor(events, n, window, mode, range_start, range_end)
    return found


def furthest(earlier: Mapping[str, Progress], later: Mapping[str, Progress]) -> dict[str, Progress]:
    """Per visitor, the progress of two consecutive parts of a range: the later part's only
    if it got further (a tie goes to the earlier start, as in match_visitor)."""
    merged = dict(earlier)
    for visitor, progress in later.items():
        known = merged.get(visitor)
        if known is None or progress.depth > known.depth:
            merged[visitor] = progress
    return merged
