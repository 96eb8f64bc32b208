"""The dashboard's line chart, laid out on the server: one metric per bucket, the previous
period overlaid, today's partial bucket marked, a value axis of round steps.

Why server-rendered SVG and no chart library: the page must work without script and under
the strict Content-Security-Policy (no inline styles or scripts), the figures are already
computed on the server, and the whole chart is a few paths. The SVG stretches to its box
(preserveAspectRatio="none", strokes that do not scale), while every text of the chart,
the axis labels and the tooltips, is HTML beside it, so it keeps its CSS size (12 px) on a
phone instead of shrinking with the picture. A small script (static/dashboard.js) only
moves the keyboard focus between buckets with the arrow keys and marks the bucket's dot;
the tooltips themselves are CSS (:hover and :focus).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

WIDTH = 1000  # the viewBox: stretched to the box, so only the proportions matter
HEIGHT = 300
#: About this many labels on the time axis, and this many steps on the value axis.
TIME_LABELS = 6
VALUE_STEPS = 4


@dataclass(frozen=True)
class Point:
    """One bucket: where it sits, what it holds now and in the previous period."""

    index: int
    x: float
    y: float | None  # None: the bucket has not started (a future part of the range)
    label: str  # the bucket, for people ("Mon 7 Dec", "14:00")
    tick: str  # its label on the time axis, or "" when the axis skips it
    text: str  # the value, formatted
    previous_label: str
    previous_text: str
    partial: bool  # the bucket holding now: its figure is not complete yet


@dataclass(frozen=True)
class Chart:
    """The paths and labels of the chart."""

    width: int
    height: int
    points: list[Point]
    line: str  # the complete buckets
    partial_line: str  # from the last complete bucket to the partial one (dashed)
    area: str
    previous_line: str
    grid: list[float]  # y of each value-axis step, bottom first
    y_labels: list[str]  # the value axis, top first
    empty: bool

    @property
    def focus_index(self) -> int:
        """The bucket the keyboard lands on first: the latest one that has started."""
        started = [p.index for p in self.points if p.y is not None]
        return started[-1] if started else 0


def nice_ticks(high: float, whole: bool) -> list[float]:
    """Round steps from 0 up to at least `high` (1, 2, 2.5 or 5 × 10^n each), about
    VALUE_STEPS of them; whole numbers only for counts. [0] when there is nothing."""
    if high <= 0:
        return [0.0]
    raw = high / VALUE_STEPS
    magnitude = 10 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for factor in (1, 2, 2.5, 5, 10):
        candidate = factor * magnitude
        if candidate >= raw and not (whole and candidate != int(candidate)):
            step = candidate
            break
    if whole:
        step = max(1.0, step)
    count = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def bucket_label(label: str, unit: str) -> str:
    """A bucket's start for people: "14:00" for an hour, "Mon 7 Dec" for a day or week,
    "Dec 2026" for a month."""
    if "T" in label:
        return label[11:16]
    day = date.fromisoformat(label[:10])
    if unit == "month":
        return day.strftime("%b %Y")
    return f"{day.strftime('%a')} {day.day} {day.strftime('%b')}"


def _tick(label: str, unit: str) -> str:
    """The short time-axis label of a bucket ("14:00", "7 Dec")."""
    if "T" in label:
        return label[11:16]
    day = date.fromisoformat(label[:10])
    return day.strftime("%b %Y") if unit == "month" else f"{day.day} {day.strftime('%b')}"


def _path(points: Sequence[tuple[float, float]]) -> str:
    """An SVG path through the points ("" for none)."""
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


@dataclass(frozen=True)
class Series:
    """One period's buckets: their labels, values and formatted values."""

    labels: list[str]
    values: list[float]
    texts: list[str]


def build(
    current: Series,
    previous: Series,
    starts: Sequence[tuple[datetime, datetime]],
    now_utc: datetime,
    unit: str,
    axis: Callable[[float], str],
    whole: bool,
) -> Chart:
    """Lay out the chart: `starts` holds each bucket's UTC [start, end) (to tell the future
    and the partial bucket from the rest), `axis` formats a value-axis number."""
    n = len(current.values)
    started = [start <= now_utc for start, _ in starts]
    shown = [v for v, s in zip(current.values, started, strict=True) if s]
    ticks = nice_ticks(max([*shown, *previous.values], default=0), whole)
    top = ticks[-1] or 1.0
    slot = WIDTH / max(n, 1)
    every = max(1, math.ceil(n / TIME_LABELS))

    def y_of(value: float) -> float:
        return round(HEIGHT * (1 - value / top), 1)

    points = []
    for i, (label, value, text) in enumerate(
        zip(current.labels, current.values, current.texts, strict=True)
    ):
        start, end = starts[i]
        has_previous = i < len(previous.values)
        points.append(
            Point(
                index=i,
                x=round(slot * (i + 0.5), 1),
                y=y_of(value) if started[i] else None,
                label=bucket_label(label, unit),
                tick=_tick(label, unit) if i % every == 0 else "",
                text=text if started[i] else "not yet",
                previous_label=bucket_label(previous.labels[i], unit) if has_previous else "",
                previous_text=previous.texts[i] if has_previous else "",
                partial=start <= now_utc < end,
            )
        )
    drawn = [(p.x, p.y) for p in points if p.y is not None]
    complete = [(p.x, p.y) for p in points if p.y is not None and not p.partial]
    partial = [(p.x, p.y) for p in points if p.y is not None and p.partial]
    tail = [complete[-1], *partial] if complete and partial else []
    area = ""
    if len(drawn) > 1:
        area = f"{_path(drawn)} L{drawn[-1][0]:.1f},{HEIGHT} L{drawn[0][0]:.1f},{HEIGHT} Z"
    before = [(round(slot * (i + 0.5), 1), y_of(v)) for i, v in enumerate(previous.values[:n])]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        points=points,
        line=_path(complete),
        partial_line=_path(tail),
        area=area,
        previous_line=_path(before),
        grid=[y_of(t) for t in ticks],
        y_labels=[axis(t) for t in reversed(ticks)],
        empty=not any(shown) and not any(previous.values),
    )
