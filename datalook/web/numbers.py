"""One way to show a number to people, on every page: the Jinja filters `num`, `money`,
`pct`, `duration`, `decimal` and the change from the previous period (`change`).

- counts with thousands separators: 7199 → "7,199";
- money rounded to the currency's minor unit in the site's currency: "$46.66", "¥1,250"
  (the exact amounts stay in JSON and CSV);
- ratios as percentages with one decimal: 0.1234 → "12.3%";
- durations in seconds as "45s", "3m 05s", "1h 02m";
- a change as an arrow and a whole percentage ("↑ 12%", "↓ 3%", "0%"), or "—" where no
  comparison makes sense (nothing before to compare with, or a range still in the future).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_currency

from ..analytics.money import to_decimal

NO_VALUE = "—"


def num(value: Any) -> str:
    """A whole number with thousands separators ("7,199"); "—" for None."""
    if value is None:
        return NO_VALUE
    return f"{round(value):,}"


def decimal(value: Any, digits: int = 2) -> str:
    """A number with `digits` decimals and thousands separators ("1,234.57")."""
    if value is None:
        return NO_VALUE
    return f"{float(value):,.{digits}f}"


def _amount(value: Any) -> Decimal:
    """An amount as a Decimal: stored millionths (int) or a decimal string or Decimal."""
    if isinstance(value, int):
        return to_decimal(value)
    return _number(value)


def _number(value: Any) -> Decimal:
    """Any figure (a count, a ratio, a decimal string) as a Decimal."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def money(value: Any, currency: str) -> str:
    """An amount in the site's currency, rounded to its minor unit ("$46.66"). An int is
    millionths as stored; a string or Decimal is an amount as the JSON reports write it."""
    if value is None:
        return NO_VALUE
    return format_currency(_amount(value), currency, locale="en_US")


def pct(value: Any) -> str:
    """A ratio (0.1234) as a percentage with one decimal ("12.3%")."""
    if value is None:
        return NO_VALUE
    return f"{float(value) * 100:.1f}%"


def duration(seconds: Any) -> str:
    """Seconds as "45s", "3m 05s" or "1h 02m"."""
    if seconds is None:
        return NO_VALUE
    total = round(float(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@dataclass(frozen=True)
class Change:
    """The change from the previous period as shown: its text and tone (up, down, flat,
    none); `better` says whether the change is good news (a bounce rate going down is)."""

    text: str
    tone: str
    better: bool | None

    @property
    def css(self) -> str:
        """The class that colours it: good, bad or neutral."""
        if self.better is None:
            return "change-neutral"
        return "change-good" if self.better else "change-bad"


NO_CHANGE = Change(NO_VALUE, "none", None)


def change(current: Any, previous: Any, comparable: bool = True, lower_is_better: bool = False):
    """The change from `previous` to `current` (NO_CHANGE without a base to compare with, or
    when `comparable` is false, e.g. a range that has not started)."""
    if not comparable or current is None or previous is None:
        return NO_CHANGE
    before, now = _number(previous), _number(current)
    if before <= 0:
        return NO_CHANGE
    percent = round((now - before) * 100 / before)
    if percent == 0:  # never "−0%": a change that rounds to nothing is none
        return Change("0%", "flat", None)
    up = percent > 0
    arrow = "↑" if up else "↓"
    return Change(f"{arrow} {abs(percent):,}%", "up" if up else "down", up != lower_is_better)


def register(filters: dict) -> None:
    """Add the filters to a Jinja environment's `filters`."""
    filters.update(num=num, decimal=decimal, money=money, pct=pct, duration=duration)
