"""attribution.json: which visits led to the conversions of a success rule, and the revenue
they brought, by a dimension of the visit (channel, source, campaign, …).

Each success event of the rule in the range (server-confirmed or a browser's; after the
filters) is credited to its visitor's visits within the lookback before it. The visitor is
the joined person: a browser's anonymous visits count as the user once a link joined them
(analytics.identity), so a payment confirmed by the backend meets the visit that led to it.
People are matched by their 64-bit keys (store_sql.VISITOR_KEY: exact but for a hash
collision, about n² / 2⁶⁵ among n people).

- A visit is a run of the person's page views with no gap over sessions.GAP (30 minutes);
  its value is that of its first page view (a visit that came from the newsletter counts
  for the newsletter). A visit counts for a success when its first page view lies within
  [success - lookback, success]. A person's page views are read from a day before their
  earliest lookback on: a visit's start is found exactly as if all were read (a run of
  page views unbroken since before then starts before every lookback either way).
- A direct visit is one with no source (`Direct / None`, none, or not recorded).
- first: the earliest visit counted gets the whole success. last: the latest non-direct
  visit (the latest visit when all are direct). linear: every visit an equal share; the
  revenue is split in the currency's minor unit (cents; millionths for a finer value), the
  earlier visits taking the remainder, so the shares are exact and sum to the total.
- A success without a visitor (an `a:` id) or without a visit counted is unattributed.

Per value: conversions (shares of successes: whole numbers but for linear), converters
(distinct people credited any share) and revenue (exact).

The report is computed with DuckDB over the columnar copy's rows of the window
(store.events_relation): the successes, then the page views of the people who converted
only, cut into visits by a window function, joined to each success's lookback and credited
with integer arithmetic (`split`'s, in SQL); Python only adds up the shares as fractions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

import duckdb

from ...acquisition import sources
from ...acquisition.dimensions import NONE, NOT_RECORDED, Filter
from ..ranges import DateRange
from ..sessions import GAP
from ..store.read import connect, events_relation
from . import copy_filters
from .store_sql import VISITOR_KEY, visitor_key

MODELS = ("first", "last", "linear")
#: The dimensions a visit is credited by: where it came from.
DIMENSIONS = ("channel", "source", "medium", "campaign", "term", "content", "referrer")
DEFAULT_LOOKBACK = timedelta(days=30)
MAX_LOOKBACK = timedelta(days=90)
# How far before the lookback window the page views are read, to find where visits began.
_MARGIN = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Credit:
    """What one value of the dimension was credited with."""

    conversions: Fraction = Fraction(0)
    converters: int = 0
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


# split() in SQL, for the k-th (from 0) of n shares of `micros` ($unit: the unit). The
# operands are whole numbers: `//` and `%` are exact (non-negative where it matters).
_STEP = "(CASE WHEN micros % $unit = 0 THEN $unit ELSE 1 END)"
_SHARE = (
    f"sign(micros) * {_STEP} * ((abs(micros) // {_STEP}) // n"
    f" + CASE WHEN k < (abs(micros) // {_STEP}) % n THEN 1 ELSE 0 END)"
)
# Each success (of a person) with each of its person's visits within the lookback before it.
_PAIRS = (
    " FROM (SELECT id, person, epoch_us(ts) AS moment, micros FROM successes"
    " JOIN people USING (key)) s"
    " JOIN touches t ON t.person = s.person AND t.moment BETWEEN s.moment - $lookback AND s.moment"
)
# What a model credits each success with: the value of one visit (first: the earliest;
# last: the latest non-direct, else the latest), or a share of every visit (linear).
_CREDITED = {
    "first": "SELECT s.id AS success, s.person, arg_min(t.value, t.moment) AS value, 1 AS n,"
    f" s.micros AS amount {_PAIRS} GROUP BY s.id, s.person, s.micros",
    "last": "SELECT s.id AS success, s.person,"
    " arg_max(t.value, [(NOT t.direct)::BIGINT, t.moment]) AS value, 1 AS n,"
    f" s.micros AS amount {_PAIRS} GROUP BY s.id, s.person, s.micros",
    "linear": f"SELECT success, person, value, n, {_SHARE} AS amount FROM ("  # noqa: S608
    " SELECT s.id AS success, s.person, s.micros, t.value,"
    " row_number() OVER visits - 1 AS k, count(*) OVER visits AS n"
    f" {_PAIRS} WINDOW visits AS (PARTITION BY s.id ORDER BY t.moment"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))",
}


def _successes(
    con: duckdb.DuckDBPyConnection, start: datetime, rule: str | None, filters: Sequence[Filter]
) -> None:
    """Table `successes`: the counted success events from `start` on (of `rule`) that pass
    the filters (decided as raw_events decides, on the copy's rows)."""
    # Only the columns needed: every row group holds successes, and each column read is
    # decoded whole.
    read = ", ".join(
        f'"{name}"'
        for name in dict.fromkeys(("id", "visitor", "has_visitor", "ts", "micros"))
        | dict.fromkeys(copy_filters.columns(filters))
    )
    by_rule = "" if rule is None else "AND name = $rule"
    con.execute(
        f"CREATE TEMP TABLE candidates AS SELECT {read} FROM events"  # noqa: S608 - known names
        f" WHERE kind = 'success' AND ts >= $start {by_rule}",
        {"start": start} | ({} if rule is None else {"rule": rule}),
    )
    passes, parameters = copy_filters.condition(con, "candidates", filters)
    con.execute(
        f"CREATE TEMP TABLE successes AS SELECT id, {VISITOR_KEY} AS key, has_visitor, ts,"  # noqa: S608
        f" coalesce(micros, 0) AS micros FROM candidates WHERE {passes}",
        parameters,
    )


def _touches(con: duckdb.DuckDBPyConnection, dimension: str, lookback: timedelta) -> None:
    """Tables `people` (each person with a success, a number, and the span of page views
    their successes need) and `touches` (their visits: runs of page views with no gap over
    GAP, at the time of the first page view, with its value of the dimension and whether it
    is direct)."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"not a dimension of attribution: {dimension!r}")
    # Each person's page views from a margin (over GAP) before their first success's
    # lookback on: a page view within a lookback begins a visit exactly when it would with
    # every page view read (the one before it, if within GAP, is read too), and only the
    # page views of the people who converted, over their own span, are sorted.
    con.execute(
        "CREATE TEMP TABLE people AS SELECT key, (row_number() OVER ())::INTEGER AS person,"
        " epoch_us(min(ts)) - $reach AS low, epoch_us(max(ts)) AS high"
        " FROM successes WHERE has_visitor GROUP BY key",
        {"reach": (lookback + _MARGIN) // _MICROSECOND},
    )
    column = f'"{dimension}"'
    con.execute(
        "CREATE TEMP TABLE touches AS SELECT person, moment,"  # noqa: S608 - a known column
        " CASE WHEN stored IS NULL THEN $not_recorded WHEN stored = '' THEN $none"
        " ELSE stored END AS value,"
        " (source IS NULL OR source IN ('', $not_recorded, $direct)) AS direct"
        f" FROM (SELECT p.person, epoch_us(e.ts) AS moment, e.{column} AS stored, e.source,"
        " lag(epoch_us(e.ts)) OVER (PARTITION BY p.person ORDER BY epoch_us(e.ts), e.id)"
        " AS previous"
        f" FROM events e JOIN people p ON {visitor_key('e.visitor')} = p.key"
        " WHERE e.kind = 'pageview' AND epoch_us(e.ts) BETWEEN p.low AND p.high)"
        " WHERE previous IS NULL OR moment - previous > $gap",
        {
            "not_recorded": NOT_RECORDED,
            "none": NONE,
            "direct": sources.DIRECT,
            "gap": GAP // _MICROSECOND,
        },
    )


def _credits(
    con: duckdb.DuckDBPyConnection, model: str, lookback: timedelta, unit: int
) -> dict[str, Credit]:
    """Table `credited` (each success credited: its person, the value, the number of
    shares and the amount) and what each value was credited with by the model."""
    parameters = {"lookback": lookback // _MICROSECOND}
    if model == "linear":
        parameters["unit"] = unit
    con.execute(f"CREATE TEMP TABLE credited AS {_CREDITED[model]}", parameters)
    found = con.execute(
        "SELECT value, histogram(n), count(DISTINCT person), sum(amount)"
        " FROM credited GROUP BY value"
    ).fetchall()
    return {
        value: Credit(
            sum((Fraction(count, n) for n, count in counts.items()), Fraction(0)),
            converters,
            int(revenue),
        )
        for value, counts, converters, revenue in found
    }


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
    # One read of the window: a row's values are the same whatever span it is read in.
    begin = rng.start_utc - lookback - _MARGIN
    con = connect()
    try:
        con.register("events", events_relation(con, site_id, begin, rng.end_utc))
        _successes(con, rng.start_utc, rule, filters)
        _touches(con, dimension, lookback)
        credits = _credits(con, model, lookback, unit)
        lost = con.execute(
            "SELECT count(*), coalesce(sum(micros), 0) FROM successes s"
            " WHERE NOT EXISTS (SELECT 1 FROM credited c WHERE c.success = s.id)"
        ).fetchone()
    finally:
        con.close()
    lost_conversions, lost_micros = lost or (0, 0)
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
        unattributed_conversions=int(lost_conversions),
        unattributed_micros=int(lost_micros),
    )
