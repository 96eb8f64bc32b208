"""attribution.json: which visits led to the conversions of a success rule, and the revenue
they brought, by a dimension of the visit (channel, source, campaign, …).

Each success event of the rule in the range (server-confirmed or a browser's; after the
filters) is credited to its visitor's visits within the lookback before it. The visitor is
the joined person: a browser's anonymous visits count as the user once a link joined them
(analytics.identity), so a payment confirmed by the backend meets the visit that led to it.

- A visit is a run of the person's page views with no gap over sessions.GAP (30 minutes);
  its value is that of its first page view (a visit that came from the newsletter counts
  for the newsletter). A visit counts for a success when its first page view lies within
  [success - lookback, success]; the page views read begin a day before that window (a
  visit longer than a day of unbroken page views is cut there).
- A direct visit is one with no source (`Direct / None`, none, or not recorded).
- first: the earliest visit counted gets the whole success. last: the latest non-direct
  visit (the latest visit when all are direct). linear: every visit an equal share; the
  revenue is split in the currency's minor unit (cents; millionths for a finer value), the
  earlier visits taking the remainder, so the shares are exact and sum to the total.
- A success without a visitor (an `a:` id) or without a visit counted is unattributed.

Per value: conversions (shares of successes: whole numbers but for linear), converters
(distinct people credited any share) and revenue (exact).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import select

from ...acquisition import sources
from ...acquisition.dimensions import NONE, NOT_RECORDED, Filter
from ...extensions import db
from ...models import ACQUISITION_LENGTHS, Event
from ..ranges import DateRange
from ..sessions import GAP
from ..visitor_ids import is_visitor
from .raw_events import range_events, stored_value

MODELS = ("first", "last", "linear")
#: The dimensions a visit is credited by: where it came from.
DIMENSIONS = ("channel", "source", "medium", "campaign", "term", "content", "referrer")
DEFAULT_LOOKBACK = timedelta(days=30)
MAX_LOOKBACK = timedelta(days=90)
# How far before the lookback window the page views are read, to find where visits began.
_MARGIN = timedelta(days=1)
_VISITORS_PER_QUERY = 500
_SOURCE = tuple(ACQUISITION_LENGTHS).index("source")
# A visit's source values that say it came from nowhere in particular.
_DIRECT = (None, NOT_RECORDED, sources.DIRECT)


@dataclass(frozen=True)
class Touch:
    """A visit: when its first page view was, its value of the dimension, whether direct."""

    at: datetime
    value: str
    direct: bool


@dataclass
class Credit:
    """What one value of the dimension was credited with."""

    conversions: Fraction = Fraction(0)
    converters: set = field(default_factory=set)
    revenue_micros: int = 0


@dataclass(frozen=True)
class Attribution:
    """The report: rows by value, and what no visit took."""

    range: DateRange
    rule: str | None
    model: str
    dimension: str
    lookback: timedelta
    filters: tuple[str, ...]
    rows: list[tuple[str, Credit]]
    unattributed_conversions: int
    unattributed_micros: int


def split(micros: int, parts: int, unit: int) -> list[int]:
    """`micros` in `parts` exact shares of whole `unit`s (else of millionths) that sum to
    it; the first shares take the remainder."""
    step = unit if micros % unit == 0 else 1
    whole, left = divmod(abs(micros) // step, parts)
    sign = -1 if micros < 0 else 1
    return [sign * step * (whole + (1 if n < left else 0)) for n in range(parts)]


def _value(row: Sequence, index: int) -> str:
    """The stored value of an acquisition column as the report shows it."""
    value = stored_value(row[index])
    return NONE if value is None else value


def touches(
    site_id: int, people: Sequence[str], start: datetime, end: datetime, dimension: str
) -> dict[str, list[Touch]]:
    """Each person's visits whose first page view is in [start, end], in time order."""
    index = tuple(ACQUISITION_LENGTHS).index(dimension)
    columns = [getattr(Event, name) for name in ACQUISITION_LENGTHS]
    found: dict[str, list[Touch]] = defaultdict(list)
    for offset in range(0, len(people), _VISITORS_PER_QUERY):
        chunk = list(people[offset : offset + _VISITORS_PER_QUERY])
        query = (
            select(Event.visitor_id, Event.occurred_at, *columns)
            .where(Event.site_id == site_id, Event.counted(), Event.event_name == "pageview")
            .where(Event.visitor_id.in_(chunk))
            .where(Event.occurred_at >= start - _MARGIN, Event.occurred_at <= end)
            .order_by(Event.visitor_id, Event.occurred_at, Event.id)
        )
        previous: dict[str, datetime] = {}
        for person, at, *values in db.session.execute(query):
            last = previous.get(person)
            previous[person] = at
            if last is not None and at - last <= GAP:
                continue  # within a visit
            if at >= start:
                direct = stored_value(values[_SOURCE]) in _DIRECT
                found[person].append(Touch(at, _value(values, index), direct))
    return found


def credited(model: str, visits: list[Touch]) -> list[tuple[Touch, Fraction]]:
    """The visits a success is credited to, with their shares (summing to one)."""
    if model == "first":
        return [(visits[0], Fraction(1))]
    if model == "last":
        others = [visit for visit in visits if not visit.direct]
        return [((others or visits)[-1], Fraction(1))]
    return [(visit, Fraction(1, len(visits))) for visit in visits]


@dataclass(frozen=True)
class Success:
    """A success event as attribution reads it."""

    visitor: str
    at: datetime
    micros: int | None

    @property
    def has_visitor(self) -> bool:
        """Whether it names a visitor (not a per-event `a:` id)."""
        return is_visitor(self.visitor)


def _successes(
    site_id: int, rng: DateRange, rule: str | None, filters: Sequence[Filter]
) -> list[Success]:
    """The counted success events of the range (of `rule`) that pass the filters: without
    filters only they are read; a filter needs every event's visit (raw_events)."""
    if filters:
        return [
            Success(event.visitor, event.at, event.micros)
            for event in range_events(site_id, rng.start_utc, rng.end_utc, filters)
            if event.kind == "success" and (rule is None or event.name == rule)
        ]
    query = (
        select(Event.visitor_id, Event.occurred_at, Event.success_value_micros)
        .where(Event.site_id == site_id, Event.counted(), Event.event_name == "success")
        .where(Event.occurred_at >= rng.start_utc, Event.occurred_at < rng.end_utc)
        .order_by(Event.occurred_at, Event.id)
    )
    if rule is not None:
        query = query.where(Event.name == rule)
    return [Success(*row) for row in db.session.execute(query)]


def attribution(
    site_id: int,
    rng: DateRange,
    rule: str | None,
    model: str,
    dimension: str,
    lookback: timedelta,
    filters: Sequence[Filter],
    unit: int,
) -> Attribution:
    """The report over the range: successes (of `rule`, else every one) that pass the
    filters, credited by `model` to their people's visits of the lookback; `unit` is the
    currency's minor unit in millionths (linear splits keep it)."""
    successes = _successes(site_id, rng, rule, filters)
    people = sorted({event.visitor for event in successes if event.has_visitor})
    visits = (
        touches(site_id, people, rng.start_utc - lookback, rng.end_utc, dimension) if people else {}
    )
    credits: dict[str, Credit] = defaultdict(Credit)
    lost_conversions = lost_micros = 0
    for event in successes:
        window = [
            visit
            for visit in (visits.get(event.visitor, []) if event.has_visitor else [])
            if event.at - lookback <= visit.at <= event.at
        ]
        if not window:
            lost_conversions += 1
            lost_micros += event.micros or 0
            continue
        shares = credited(model, window)
        amounts = split(event.micros or 0, len(shares), unit)
        for (visit, share), amount in zip(shares, amounts, strict=True):
            credit = credits[visit.value]
            credit.conversions += share
            credit.converters.add(event.visitor)
            credit.revenue_micros += amount
    rows = sorted(
        credits.items(),
        key=lambda item: (-item[1].revenue_micros, -item[1].conversions, item[0]),
    )
    return Attribution(
        range=rng,
        rule=rule,
        model=model,
        dimension=dimension,
        lookback=lookback,
        filters=tuple(str(f) for f in filters),
        rows=rows,
        unattributed_conversions=lost_conversions,
        unattributed_micros=lost_micros,
    )
