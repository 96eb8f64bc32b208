"""Funnels: definitions (parsed and validated in one place) and the per-visitor computation.

Semantics, stated on the report page and in the docs:
- Counted per visitor (a `visitor_id` not starting with "a:"); events without a visitor take
  no part and are counted in `excluded_events_without_visitor` (those in the range that
  match a step).
- A visitor enters with a step-1 event inside the date range. Step k+1 happens at or after
  step k (a different event: one event satisfies at most one step; other events in between
  are allowed), no later than step 1 plus the conversion window (the edge is included);
  later steps may fall after the range's end.
- Each visitor counts once, at the furthest step reached from any of their step-1 events in
  the range; times and revenue come from the earliest step-1 event that reaches that far.
- Strict mode: each next step is the visitor's very next event (events at the same instant
  in the order they were stored).
"""

from __future__ import annotations

import json
import re
import statistics
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from ...ingest.schema import EVENT_NAMES, MAX_NAME, MAX_PATH
from ..money import decimal_string

MIN_STEPS, MAX_STEPS = 2, 8
MODES = ("ordered", "strict")
DEFAULT_WINDOW = "24h"
MIN_WINDOW, MAX_WINDOW = timedelta(minutes=1), timedelta(days=30)
# A number and a unit; also the OpenAPI pattern of the `window` parameter.
WINDOW_PATTERN = "^([1-9][0-9]{0,5})([mhd])$"
_WINDOW_RE = re.compile(WINDOW_PATTERN)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_STEP_KEYS = frozenset({"event_name", "page_path", "name", "property"})
MAX_PROPERTY_KEY = 100


class FunnelError(ValueError):
    """A funnel parameter that cannot be used; names the parameter for the JSON error."""

    def __init__(self, field: str, code: str, message: str) -> None:
        """Keep the field and the machine-readable code beside the message."""
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Step:
    """What one step matches: an event name, and optionally a path, a rule name, a property."""

    event_name: str
    page_path: str | None = None  # exact, or a prefix when it ends in "*"
    name: str | None = None
    property_key: str | None = None
    property_value: object = None

    @property
    def path_prefix(self) -> str | None:
        """The prefix a "/docs/*" path stands for, or None for an exact path."""
        if self.page_path and self.page_path.endswith("*"):
            return self.page_path[:-1]
        return None

    @property
    def label(self) -> str:
        """A short human label, e.g. "pageview /pricing" or "success paid-customer"."""
        parts = [self.event_name]
        if self.page_path:
            parts.append(self.page_path)
        if self.name:
            parts.append(self.name)
        if self.property_key is not None:
            parts.append(f"{self.property_key}={json.dumps(self.property_value)}")
        return " ".join(parts)

    def as_json(self) -> dict:
        """The step as the JSON object the API and the builder use."""
        prop = None
        if self.property_key is not None:
            prop = {"key": self.property_key, "value": self.property_value}
        return {
            "event_name": self.event_name,
            "page_path": self.page_path,
            "name": self.name,
            "property": prop,
        }

    def matches(
        self, event_name: str, page_path: str, name: str | None, properties: str | None
    ) -> bool:
        """Whether an event (its stored columns) satisfies this step."""
        if event_name != self.event_name:
            return False
        if self.page_path is not None:
            prefix = self.path_prefix
            if prefix is not None:
                if not page_path.startswith(prefix):
                    return False
            elif page_path != self.page_path:
                return False
        if self.name is not None and name != self.name:
            return False
        if self.property_key is not None:
            if not properties:
                return False
            try:
                found = json.loads(properties)
            except ValueError:
                return False
            if not isinstance(found, dict) or self.property_key not in found:
                return False
            return same_json_value(found[self.property_key], self.property_value)
        return True


def same_json_value(a: object, b: object) -> bool:
    """JSON equality: true is not 1, and 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


@dataclass(frozen=True)
class FunnelDefinition:
    """The steps, the conversion window and the mode of a funnel."""

    steps: tuple[Step, ...]
    window: timedelta
    window_text: str
    mode: str

    def as_json(self) -> dict:
        """The definition as stored for a saved funnel (and sent to the builder)."""
        return {
            "steps": [s.as_json() for s in self.steps],
            "window": self.window_text,
            "mode": self.mode,
        }

    def step_mask(
        self, event_name: str, page_path: str, name: str | None, properties: str | None
    ) -> int:
        """Bit k set when the event satisfies step k+1."""
        mask = 0
        for index, step in enumerate(self.steps):
            if step.matches(event_name, page_path, name, properties):
                mask |= 1 << index
        return mask


def parse_window(text: object) -> tuple[timedelta, str]:
    """Parse "90m", "24h" or "7d" (1 minute to 30 days) or raise FunnelError naming window."""
    if text is None or text == "":
        text = DEFAULT_WINDOW
    match = _WINDOW_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise FunnelError(
            "window", "invalid_window", "window must be a number and a unit m, h or d, e.g. 24h"
        )
    window = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise FunnelError("window", "out_of_range", "window must be from 1 minute to 30 days")
    return window, match.group(0)


def _optional_text(raw: Mapping, key: str, number: int, limit: int) -> str | None:
    """An optional non-empty string field of a step (None or absent: not used)."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise FunnelError(
            "step", f"invalid_{key}", f"step {number}: {key} must be a string of 1 to {limit}"
        )
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise FunnelError("step", f"invalid_{key}", f"step {number}: {key} has control characters")
    return value


def parse_step(raw: object, number: int) -> Step:
    """Validate one step (a JSON object or its text) or raise FunnelError naming step."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise FunnelError(
                "step", "malformed_step", f"step {number} is not a JSON object"
            ) from None
    if not isinstance(raw, dict):
        raise FunnelError("step", "malformed_step", f"step {number} is not a JSON object")
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise FunnelError("step", "unknown_key", f"step {number}: unknown key {unknown[0]!r}")
    event_name = raw.get("event_name")
    if event_name not in EVENT_NAMES:
        raise FunnelError(
            "step",
            "unknown_event_name",
            f"step {number}: event_name must be one of {', '.join(EVENT_NAMES)}",
        )
    page_path = _optional_text(raw, "page_path", number, MAX_PATH)
    if page_path is not None:
        if not page_path.startswith("/"):
            raise FunnelError("step", "invalid_page_path", f"step {number}: page_path starts /")
        if "*" in page_path[:-1]:
            raise FunnelError(
                "step", "invalid_page_path", f"step {number}: '*' may only end a page_path"
            )
    name = _optional_text(raw, "name", number, MAX_NAME)
    prop = raw.get("property")
    key, value = None, None
    if prop is not None:
        if not isinstance(prop, dict) or set(prop) != {"key", "value"}:
            raise FunnelError(
                "step", "invalid_property", f"step {number}: property is {{key, value}}"
            )
        key = _optional_text(prop, "key", number, MAX_PROPERTY_KEY)
        value = prop["value"]
        if key is None or not isinstance(value, str | int | float | bool) or value is None:
            raise FunnelError(
                "step",
                "invalid_property",
                f"step {number}: property needs a key and a string, number or boolean value",
            )
    return Step(event_name, page_path, name, key, value)


def parse_definition(steps: Sequence[object], window: object, mode: object) -> FunnelDefinition:
    """The one validation of a funnel (JSON endpoint, saved-funnel form, tests)."""
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise FunnelError(
            "step", "step_count", f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, got {len(steps)}"
        )
    parsed = tuple(parse_step(raw, number) for number, raw in enumerate(steps, start=1))
    window_delta, window_text = parse_window(window)
    mode = mode or "ordered"
    if mode not in MODES:
        raise FunnelError("mode", "unknown_mode", "mode must be ordered or strict")
    return FunnelDefinition(parsed, window_delta, window_text, mode)


def definition_from_json(text: str) -> FunnelDefinition:
    """Load a stored definition (validated again: stored JSON is still input)."""
    data = json.loads(text)
    return parse_definition(data["steps"], data["window"], data["mode"])


# ---------------------------------------------------------------- per-visitor matching


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


# ---------------------------------------------------------------- grouping and the report


class MatchRow(NamedTuple):
    """One event read for a funnel, in time order: who, when, which steps, what value."""

    seq: int
    visitor_id: str
    at: datetime
    mask: int
    value_micros: int | None


def is_visitor(visitor_id: str) -> bool:
    """A visitor id names a visitor unless it is a per-event anonymous id ("a:...")."""
    return not visitor_id.startswith("a:")


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
    reached = totals.visitors
    rows = []
    for k, step in enumerate(definition.steps):
        gaps = totals.gaps_micros[k]
        rows.append(
            StepResult(
                label=step.label,
                visitors=reached[k],
                conversion_from_start=1.0 if k == 0 else _ratio(reached[k], reached[0]),
                conversion_from_previous=1.0 if k == 0 else _ratio(reached[k], reached[k - 1]),
                median_seconds_from_previous=statistics.median(gaps) / 1_000_000 if gaps else None,
                revenue_micros=totals.revenue[k],
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
