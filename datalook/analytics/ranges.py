"""Date ranges of the reports, in a site's time zone.

A report covers whole local days, `from` and `to` both inclusive, cut at local midnight in
the site's IANA time zone. Stored times are naive UTC, so every range is turned into a
half-open UTC interval `[start_utc, end_utc)` once, here, and nothing else converts.

Every report (dashboard, stats.json, CSV, funnels, journeys) reads its range through
site_range: the same zone (the site's, UTC should this server not know it) and the same
"All time" (from the day of the site's first counted event).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select

from ..extensions import db
from ..models import Site
from .parameters import ParameterError
from .rollups.models import HourlyTotals

log = logging.getLogger(__name__)

# The named periods of the range picker, in the order they are offered.
PERIODS: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "last-month": "Last month",
    "90d": "Last 90 days",
    "12mo": "Last 12 months",
    "all": "All time",
}
DEFAULT_PERIOD = "30d"
# No report reaches before this day: it bounds "All time" and custom ranges.
EARLIEST_DAY = date(2000, 1, 1)
MAX_CUSTOM_DAYS = 366 * 20


class UnknownZone(ValueError):
    """A time zone name that this server's tz database does not know."""


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone `name`, or raise UnknownZone (a setting being saved is checked
    with it: the settings form, `flask sites set`)."""
    if not isinstance(name, str) or name not in zone_names():
        raise UnknownZone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownZone(name) from exc


_ZONES: frozenset[str] | None = None
_WARNED: set[str] = set()


def site_zone(name: str | None) -> ZoneInfo:
    """The zone that cuts a site's days: its stored setting, or UTC when this server does
    not know that name.

    A stored name was valid when it was saved, but a server with another tz database (or a
    restored backup) may not know it. It is a setting, not the client's parameter, so every
    report and page falls back to UTC (and says which zone it used) instead of refusing.
    """
    try:
        return zone(name or "UTC")
    except UnknownZone:
        if name not in _WARNED:  # once per name and process: pages ask on every time shown
            _WARNED.add(str(name))
            log.warning("time zone %r of a site is unknown here; its reports use UTC", name)
        return ZoneInfo("UTC")


def zone_names() -> frozenset[str]:
    """The IANA names this machine knows (cached: the tz database does not change at run time)."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """Return the naive UTC instant at which local `day` starts in `tz`.

    A day that starts in a DST gap (no local midnight) starts at the first local instant
    that exists; zoneinfo resolves that with fold=0, which lands after the gap.
    """
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return local.astimezone(UTC).replace(tzinfo=None)


def local_day(moment_utc: datetime, tz: ZoneInfo) -> date:
    """Return the local day in `tz` of a naive UTC instant."""
    return moment_utc.replace(tzinfo=UTC).astimezone(tz).date()


@dataclass(frozen=True)
class DateRange:
    """Whole local days [first, last] in one time zone, and the UTC interval they cover."""

    first: date
    last: date
    tz: ZoneInfo
    period: str | None = None  # the named period it came from, if any

    @property
    def days(self) -> int:
        """Number of local days in the range."""
        return (self.last - self.first).days + 1

    @property
    def start_utc(self) -> datetime:
        """Naive UTC start of the range (inclusive)."""
        return local_midnight_utc(self.first, self.tz)

    @property
    def end_utc(self) -> datetime:
        """Naive UTC end of the range (exclusive): the next local midnight after `last`."""
        return local_midnight_utc(self.last + timedelta(days=1), self.tz)

    @property
    def label(self) -> str:
        """What the range picker shows for this range."""
        if self.period:
            return PERIODS[self.period]
        return f"{self.first.isoformat()} – {self.last.isoformat()}"

    def previous(self) -> DateRange:
        """The range of the same number of days just before this one."""
        last = self.first - timedelta(days=1)
        return DateRange(last - timedelta(days=self.days - 1), last, self.tz)

    def granularity(self) -> str:
        """Bucket size of the chart: hour up to 2 days, day up to 90, week up to a year."""
        if self.days <= 2:
            return "hour"
        if self.days <= 90:
            return "day"
        if self.days <= 366:
            return "week"
        return "month"

    def buckets(self) -> list[Bucket]:
        """The chart's buckets, in order, each a local start and a UTC interval."""
        unit = self.granularity()
        if unit == "hour":
            return _hour_buckets(self)
        starts: list[date] = []
        day = self.first
        if unit == "week":  # weeks start on Monday; the first may be partial
            while day <= self.last:
                starts.append(day)
                day = day + timedelta(days=7 - day.weekday())
        elif unit == "month":
            while day <= self.last:
                starts.append(day)
                day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        else:
            starts = [self.first + timedelta(days=n) for n in range(self.days)]
        ends = [*starts[1:], self.last + timedelta(days=1)]
        return [
            Bucket(s.isoformat(), local_midnight_utc(s, self.tz), local_midnight_utc(e, self.tz))
            for s, e in zip(starts, ends, strict=True)
        ]

    def query_args(self) -> dict[str, str]:
        """URL parameters that select this range again (for links, bookmarks, CSV)."""
        if self.period:
            return {"period": self.period}
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


@dataclass(frozen=True)
class Bucket:
    """One step of a chart: its local label and its UTC interval [start_utc, end_utc)."""

    label: str
    start_utc: datetime
    end_utc: datetime


def _hour_buckets(rng: DateRange) -> list[Bucket]:
    """Local hours of a short range, walked in UTC so DST days have 23 or 25 of them."""
    out = []
    moment = rng.start_utc
    end = rng.end_utc
    while moment < end:
        local = moment.replace(tzinfo=UTC).astimezone(rng.tz)
        nxt = moment + timedelta(hours=1)
        out.append(Bucket(local.strftime("%Y-%m-%dT%H:%M%z"), moment, min(nxt, end)))
        moment = nxt
    return out


def today_in(tz: ZoneInfo, now_utc: datetime | None = None) -> date:
    """Return today's local date in `tz` (now_utc is naive UTC, for tests)."""
    now = now_utc or datetime.now(UTC).replace(tzinfo=None)
    return local_day(now, tz)


def named_range(period: str, tz: ZoneInfo, today: date, first_day: date | None) -> DateRange:
    """Turn a named period into days; `first_day` bounds "All time" (None: today)."""
    if period == "today":
        return DateRange(today, today, tz, period)
    if period == "yesterday":
        day = today - timedelta(days=1)
        return DateRange(day, day, tz, period)
    if period in ("7d", "30d", "90d"):
        n = int(period[:-1])
        return DateRange(today - timedelta(days=n - 1), today, tz, period)
    if period == "month":
        return DateRange(today.replace(day=1), today, tz, period)
    if period == "last-month":
        last = today.replace(day=1) - timedelta(days=1)
        return DateRange(last.replace(day=1), last, tz, period)
    if period == "12mo":
        try:
            start = today.replace(year=today.year - 1) + timedelta(days=1)
        except ValueError:  # 29 February
            start = today.replace(year=today.year - 1, day=28) + timedelta(days=2)
        return DateRange(start, today, tz, period)
    if period == "all":
        start = max(min(first_day or today, today), EARLIEST_DAY)
        return DateRange(start, today, tz, period)
    raise ParameterError("period", "unknown_period", f"period must be one of {', '.join(PERIODS)}")


def _parse_day(args: Mapping[str, str], field: str) -> date:
    """Parse one YYYY-MM-DD parameter or raise ParameterError naming it."""
    text = args.get(field, "")
    try:
        if len(text) != 10:
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ParameterError(field, "invalid_date", f"{field} must be a date YYYY-MM-DD") from exc
    if day < EARLIEST_DAY or day.year > 9998:
        raise ParameterError(field, "out_of_range", f"{field} must be from {EARLIEST_DAY} on")
    return day


def first_counted_day(site_id: int, tz: ZoneInfo) -> date | None:
    """The local day of the site's first counted event (None without any): "All time"
    starts there in every report.

    Read from the summaries (one primary-key seek, test events never in them). The first
    summarised UTC hour can start on the local day before its event in a zone whose offset
    is not whole hours: "All time" then begins with one empty day, never after an event.
    """
    first = db.session.scalar(
        select(func.min(HourlyTotals.hour)).where(HourlyTotals.site_id == site_id)
    )
    return local_day(first, tz) if first is not None else None


def site_range(site: Site, args: Mapping[str, str], now_utc: datetime | None = None) -> DateRange:
    """The range a report asks for in `args`, in the site's zone (ParameterError when bad)."""
    tz = site_zone(site.timezone)
    # Only "All time" needs the first day: other periods save the read.
    first = first_counted_day(site.id, tz) if args.get("period") == "all" else None
    return parse_range(args, tz, today_in(tz, now_utc), first)


def parse_range(
    args: Mapping[str, str],
    tz: ZoneInfo,
    today: date,
    first_day: date | None = None,
) -> DateRange:
    """Read `from`/`to` (both inclusive) or `period` from request arguments.

    Nothing given means the default period (Last 30 days). `from` without `to` (or the
    reverse) and `period` beside `from`/`to` are refused rather than guessed.
    """
    has_from, has_to = bool(args.get("from")), bool(args.get("to"))
    period = args.get("period") or None
    if has_from or has_to:
        if period:
            raise ParameterError(
                "period", "conflicting_parameters", "give period or from/to, not both"
            )
        if not has_to:
            raise ParameterError("to", "missing", "to is required with from")
        if not has_from:
            raise ParameterError("from", "missing", "from is required with to")
        first, last = _parse_day(args, "from"), _parse_day(args, "to")
        if last < first:
            raise ParameterError("to", "before_from", "to must be on or after from")
        if (last - first).days >= MAX_CUSTOM_DAYS:
            raise ParameterError("to", "range_too_long", "a range is at most 20 years")
        return DateRange(first, last, tz)
    return named_range(period or DEFAULT_PERIOD, tz, today, first_day)
