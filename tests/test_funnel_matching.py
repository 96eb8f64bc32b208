"""The per-visitor funnel matching and the report built from it (pure functions, no database)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from datalook.analytics.funnels.definition import parse_definition
from datalook.analytics.funnels.matching import MatchRow, VisitorEvent, match_visitor
from datalook.analytics.funnels.report import compute

T0 = datetime(2026, 3, 10, 12, 0, 0)
START, END = datetime(2026, 3, 10), datetime(2026, 3, 11)
DAY = timedelta(hours=24)


def ev(minutes: float, mask: int, seq: int | None = None, value: int | None = None) -> VisitorEvent:
    """An event `minutes` after T0 matching the steps of `mask`."""
    return VisitorEvent(T0 + timedelta(minutes=minutes), seq if seq is not None else 0, mask, value)


def seqd(*events: VisitorEvent) -> list[VisitorEvent]:
    """Give events increasing seq (stored order) unless they carry one."""
    return [
        VisitorEvent(e.at, e.seq or i + 1, e.mask, e.value_micros) for i, e in enumerate(events)
    ]


S1, S2, S3, S4 = 1, 2, 4, 8

ORDERED_CASES = [
    ("nothing", [], 3, 0),
    ("only step 2", [ev(0, S2)], 3, 0),
    ("step 1 only", [ev(0, S1)], 3, 1),
    ("in order", [ev(0, S1), ev(5, S2), ev(9, S3)], 3, 3),
    ("out of order stops", [ev(0, S1), ev(5, S3), ev(9, S2)], 3, 2),
    ("step 2 before step 1 does not count", [ev(0, S2), ev(5, S1)], 2, 1),
    ("other events between are allowed", [ev(0, S1), ev(1, 0), ev(2, S2)], 2, 2),
    ("one event is one step", [ev(0, S1 | S2)], 2, 1),
    ("an event matching two steps serves the later one", [ev(0, S1), ev(1, S2 | S3)], 3, 2),
    ("the same event twice is two events", [ev(0, S1 | S2), ev(0, S1 | S2)], 2, 2),
    ("tie: step 2 at the same instant counts", [ev(0, S1, seq=2), ev(0, S2, seq=1)], 2, 2),
    (
        "tie: the right event of a tie is chosen for a later step",
        [ev(0, S1, seq=1), ev(1, S2 | S3, seq=2), ev(1, S2, seq=3)],
        3,
        3,
    ),
    ("window edge exactly is inside", [ev(0, S1), ev(24 * 60, S2)], 2, 2),
    ("one second past the window is outside", [ev(0, S1), ev(24 * 60 + 1 / 60, S2)], 2, 1),
    (
        "window is from step 1, not from the previous step",
        [ev(0, S1), ev(60, S2), ev(1441, S3)],
        3,
        2,
    ),
    (
        "re-entering: a later step 1 gets further",
        [ev(0, S1), ev(10, S2), ev(100, S1), ev(110, S2), ev(1500, S3)],
        3,
        3,
    ),
    ("re-entering counts the visitor once", [ev(0, S1), ev(1, S1), ev(2, S2)], 2, 2),
]


@pytest.mark.parametrize(
    ("events", "steps", "depth"),
    [c[1:] for c in ORDERED_CASES],
    ids=[c[0] for c in ORDERED_CASES],
)
def test_ordered_matching(events, steps, depth):
    progress = match_visitor(seqd(*events), steps, DAY, "ordered", START, END)
    assert progress.depth == depth
    assert len(progress.times) == depth
    assert list(progress.times) == sorted(progress.times)


STRICT_CASES = [
    ("consecutive events", [ev(0, S1), ev(1, S2), ev(2, S3)], 3, 3),
    ("another event between breaks it", [ev(0, S1), ev(1, 0), ev(2, S2)], 2, 1),
    (
        "a later attempt without interruption counts",
        [ev(0, S1), ev(1, 0), ev(2, S1), ev(3, S2)],
        2,
        2,
    ),
    ("stored order decides at the same instant", [ev(0, S1, seq=2), ev(0, S2, seq=1)], 2, 1),
    ("window still applies", [ev(0, S1), ev(24 * 60 + 1, S2)], 2, 1),
    ("step 3 after an interruption", [ev(0, S1), ev(1, S2), ev(2, 0), ev(3, S3)], 3, 2),
]


@pytest.mark.parametrize(
    ("events", "steps", "depth"),
    [c[1:] for c in STRICT_CASES],
    ids=[c[0] for c in STRICT_CASES],
)
def test_strict_matching(events, steps, depth):
    assert match_visitor(seqd(*events), steps, DAY, "strict", START, END).depth == depth


@pytest.mark.parametrize(
    ("minutes", "entered"),
    [
        (-12 * 60 - 1 / 60, False),  # one second before the range starts (00:00 is T0 - 12h)
        (-12 * 60, True),  # the range's first instant
        (12 * 60 - 1 / 60, True),  # its last second
        (12 * 60, False),  # the next day's midnight is outside (the end is exclusive)
    ],
)
def test_step_one_must_fall_inside_the_range(minutes, entered):
    progress = match_visitor(seqd(ev(minutes, S1)), 2, DAY, "ordered", START, END)
    assert progress.depth == (1 if entered else 0)


def test_later_steps_may_fall_after_the_range_end_inside_the_window():
    events = seqd(ev(11 * 60, S1), ev(13 * 60, S2))  # 23:00, then 01:00 the next day
    assert match_visitor(events, 2, DAY, "ordered", START, END).depth == 2


def test_times_and_values_come_from_the_earliest_attempt_that_goes_furthest():
    events = seqd(ev(0, S1), ev(30, S2, value=5), ev(40, S1), ev(41, S2, value=7))
    progress = match_visitor(events, 2, DAY, "ordered", START, END)
    assert progress.times == (T0, T0 + timedelta(minutes=30))
    assert progress.values == (None, 5)


def _rows(visitor: str, events: list[VisitorEvent]) -> list[MatchRow]:
    """Rows of one visitor for the grouping."""
    return [MatchRow(e.seq, visitor, e.at, e.mask, e.value_micros) for e in events]


def test_a_step_at_the_instant_of_step_one_counts_and_anonymous_rows_are_only_counted():
    definition = parse_definition(
        [{"event_name": "pageview"}, {"event_name": "click"}], "24h", None
    )
    rows = sorted(
        _rows("u:1", [ev(0, S2, seq=1), ev(0, S1, seq=2)])
        + _rows("a:x", [ev(1, S1, seq=3), ev(2, S2, seq=4)])
        + _rows("u:2", [ev(-1, S2, seq=5)]),
        key=lambda r: (r.visitor_id, r.at, r.seq),
    )
    report = compute(definition, rows, START, END).as_json("USD")
    assert [s["visitors"] for s in report["steps"]] == [1, 1]
    assert report["excluded_events_without_visitor"] == 2


def test_report_counts_conversion_median_and_exact_revenue():
    definition = parse_definition(
        [{"event_name": "pageview", "page_path": "/"}, {"event_name": "success", "name": "paid"}],
        "24h",
        "ordered",
    )
    rows = []
    seq = 0
    for visitor, gap, value in [("u:1", 10, 1_990_000), ("u:2", 30, 10_000_001), ("u:3", None, 0)]:
        seq += 1
        rows.append(MatchRow(seq, visitor, T0, 1, None))
        if gap is not None:
            seq += 1
            rows.append(MatchRow(seq, visitor, T0 + timedelta(minutes=gap), 2, value))
    rows.sort(key=lambda r: (r.visitor_id, r.at, r.seq))
    report = compute(definition, rows, START, END).as_json("USD")
    first, second = report["steps"]
    assert first == {
        "label": "pageview /",
        "visitors": 3,
        "conversion_from_start": 1.0,
        "conversion_from_previous": 1.0,
        "median_seconds_from_previous": None,
        "revenue": "0.00",
    }
    assert second["visitors"] == 2
    assert second["conversion_from_start"] == pytest.approx(2 / 3)
    assert second["median_seconds_from_previous"] == 1200.0
    assert second["revenue"] == "11.990001"
    assert report["excluded_events_without_visitor"] == 0


@pytest.mark.parametrize(
    ("currency", "micros", "text"),
    [
        ("USD", 0, "0.00"),
        ("USD", 1_500_000, "1.50"),
        ("USD", 10_000_001, "10.000001"),
        ("USD", -2_000_000, "-2.00"),
        ("JPY", 1_250_000_000, "1250"),
        ("JPY", 1_250_500_000, "1250.5"),
        ("BHD", 1_500_000, "1.500"),
        ("EUR", 1_000_000_000_000_000, "1000000000.00"),
    ],
)
def test_revenue_is_written_in_the_sites_currency_exactly(currency, micros, text):
    definition = parse_definition(
        [{"event_name": "pageview"}, {"event_name": "success"}], "24h", None
    )
    rows = [MatchRow(1, "u:1", T0, 1, None), MatchRow(2, "u:1", T0, 2, micros)]
    report = compute(definition, rows, START, END).as_json(currency)
    assert [step["revenue"] for step in report["steps"]] == [
        "0" if currency == "JPY" else "0." + "0" * (3 if currency == "BHD" else 2),
        text,
    ]


def _brute_force_depth(events, steps, window, mode, start, end) -> int:
    """The furthest step by trying every chain of events (independent of the real search)."""
    ordered = sorted(events, key=lambda e: (e.at, e.seq))
    best = 0

    def extend(chain):
        """Try every next event for the chain."""
        nonlocal best
        best = max(best, len(chain))
        if len(chain) == steps:
            return
        last = ordered[chain[-1]]
        deadline = ordered[chain[0]].at + window
        for i, e in enumerate(ordered):
            if i in chain or not e.mask >> len(chain) & 1 or e.at < last.at or e.at > deadline:
                continue
            if mode == "strict" and i != chain[-1] + 1:
                continue
            extend([*chain, i])

    for i, e in enumerate(ordered):
        if e.mask & 1 and start <= e.at < end:
            extend([i])
    return best


@pytest.mark.parametrize("mode", ["ordered", "strict"])
@pytest.mark.parametrize("seed", range(40))
def test_matching_agrees_with_a_brute_force_search(seed, mode):
    import random

    rng = random.Random(seed)
    steps = rng.randint(2, 4)
    events = [
        VisitorEvent(
            START
            + timedelta(hours=rng.choice([6, 12, 18, 30]), minutes=rng.randint(0, 90) // 30 * 30),
            seq,
            rng.randint(0, 2**steps - 1),
        )
        for seq in range(1, rng.randint(1, 9))
    ]
    window = timedelta(minutes=rng.choice([30, 60, 600]))
    expected = _brute_force_depth(events, steps, window, mode, START, END)
    assert match_visitor(events, steps, window, mode, START, END).depth == expected


def test_attempt_links_point_to_the_previous_as_deep_and_the_next_deeper():
    from datalook.analytics.funnels.changes import attempt_links
    from datalook.analytics.funnels.models import NEVER_AFTER, NEVER_BEFORE

    t = [T0 + timedelta(minutes=i) for i in range(5)]
    links = attempt_links([(t[0], 1), (t[1], 3), (t[2], 2), (t[3], 3), (t[4], 1)])
    assert links == [
        (NEVER_BEFORE, t[1]),
        (NEVER_BEFORE, NEVER_AFTER),
        (t[1], t[3]),
        (t[1], NEVER_AFTER),
        (t[3], NEVER_AFTER),
    ]
