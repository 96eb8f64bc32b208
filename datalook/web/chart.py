"""The chart of the dashboard as SVG geometry, computed on the server (no script needed)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 720
HEIGHT = 240
LEFT = 64  # room for the value axis labels
BOTTOM = 36  # room for the time axis labels
TOP = 12
RIGHT = 8


@dataclass(frozen=True)
class Bar:
    """One bar: its box and what it says."""

    x: float
    y: float
    width: float
    height: float
    label: str
    text: str


@dataclass(frozen=True)
class Chart:
    """Bars, axis ticks and the box they sit in."""

    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]  # (x, label)
    baseline: float
    left: int


def _nice_max(value: float) -> float:
    """A round upper bound for the value axis (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if value <= factor * step:
            return factor * step
    return 10 * step


def build(labels: list[str], values: list[float], texts: list[str], fmt) -> Chart:
    """Lay out one bar per bucket; `fmt` formats a value-axis number."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    top = _nice_max(max(values, default=0))
    n = max(len(values), 1)
    slot = plot_w / n
    bars = []
    for index, (label, value, text) in enumerate(zip(labels, values, texts, strict=True)):
        h = plot_h * (value / top) if top else 0
        bars.append(
            Bar(
                x=round(LEFT + index * slot + slot * 0.1, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(max(slot * 0.8, 0.5), 2),
                height=round(h, 2),
                label=label,
                text=text,
            )
        )
    y_ticks = [(round(TOP + plot_h * (1 - f), 2), fmt(top * f)) for f in (0, 0.5, 1)]
    step = max(1, n // 6)
    x_ticks = [
        (round(LEFT + i * slot + slot / 2, 2), short_label(labels[i]))
        for i in range(0, len(labels), step)
    ]
    return Chart(WIDTH, HEIGHT, bars, y_ticks, x_ticks, TOP + plot_h, LEFT)


def short_label(label: str) -> str:
    """An axis label: the local hour of an hourly bucket ("14:00"), else the day."""
    return label[11:16] if "T" in label else label
