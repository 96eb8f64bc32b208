"""breakdown.json: a dimension's values over a range, with their visitors, visits, page
views, conversions, conversion rate and revenue, counted exactly from the range's rows in
the copy (store.read; store_sql gives the values and the filters).

Per value (raw_events.value_of's, none shown as NONE; after the filters): visitors are the
distinct visitors with an event of that value; visits the visits (of a visitor) with one;
pageviews and conversions the page views and success events of that value; converters the
visitors with a success event of that value, and the conversion rate converters /
visitors; revenue the exact sum of those success events' values. Rows are ordered by
visitors (most first), then by value.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...acquisition.dimensions import Filter
from ...models import Site
from ..ranges import DateRange
from ..store.daily import ROLLED
from ..store.read import connect, events_relation
from .model import DimensionBreakdown, DimensionRow
from .rolled_rows import rolled_tables
from .store_sql import REVENUE, VISITOR_KEY, Scope

# The figures of one (value, visit), then of one value over its visits: the two levels
# both breakdown queries below sum through.
_PER_VISIT = f"""count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
    count(*) FILTER (WHERE kind = 'success') AS conversions,
    {REVENUE} AS revenue"""
_PER_VALUE = """count(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL) AS visitors,
    count(visit_id) AS visits,
    sum(pageviews) AS pageviews,
    sum(conversions) AS conversions,
    count(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL AND conversions > 0)
        AS converters,
    coalesce(sum(revenue), 0) AS revenue"""

# One value's figures; `total` counts the values (before LIMIT and OFFSET). The rows are
# first summed per value and visit (visit_id is NULL exactly for the events without a
# visitor, rows.py): a visit dimension has one value per visit, and counting visitors
# over those sums hashes far fewer rows than a distinct count over the events.
_ROWS = """
SELECT value, visitors, visits, pageviews, conversions, converters, revenue,
       count(*) OVER () AS total
FROM (
    SELECT value,
           {per_value}
    FROM (
        SELECT {value} AS value, visit_id, any_value({visitor}) AS visitor,
               {per_visit}
        FROM rows GROUP BY 1, 2
    )
    GROUP BY value
)
ORDER BY visitors DESC, value
LIMIT ? OFFSET ?
"""
_COUNT = "SELECT count(DISTINCT {value}) FROM rows"


def _breakdown(
    scope: Scope,
    rng: DateRange,
    dimension: str,
    filters: Sequence[Filter],
    limit: int,
    offset: int,
) -> DimensionBreakdown:
    """One page of a dimension's rows over the scope's rows."""
    value = scope.shown(dimension)
    found = scope.query(
        _ROWS.format(value=value, visitor=VISITOR_KEY, per_visit=_PER_VISIT, per_value=_PER_VALUE),
        [limit, offset],
    )
    if found:
        total = found[0][-1]
    elif offset:  # past the last row: count the values alone
        total = scope.query(_COUNT.format(value=value))[0][0]
    else:
        total = 0
    return _result(rng, dimension, filters, found, int(total), limit, offset)


def _result(
    rng: DateRange,
    dimension: str,
    filters: Sequence[Filter],
    found: list[tuple],
    total: int,
    limit: int,
    offset: int,
) -> DimensionBreakdown:
    """The breakdown of a dimension from its query's rows (value, then six figures)."""
    return DimensionBreakdown(
        range=rng,
        dimension=dimension,
        filters=tuple(str(f) for f in filters),
        rows=[DimensionRow(row[0], *(int(figure) for figure in row[1:7])) for row in found],
        total_rows=total,
        limit=limit,
        offset=offset,
    )


def dimension_rows(
    site: Site, rng: DateRange, dimension: str, filters: Sequence[Filter], limit: int, offset: int
) -> DimensionBreakdown:
    """One page of the dimension's rows over the range, after the filters (unfiltered, over
    a long range: from the per-day rollups, rolled_rows)."""
    if not filters and dimension in ROLLED:
        rolled = rolled_tables(site, rng, [dimension], limit, offset)
        if rolled is not None:
            return rolled[dimension]
    con = connect()
    try:
        relation = events_relation(con, site.id, rng.start_utc, rng.end_utc)
        scope = Scope(con, relation, filters, [dimension])
        return _breakdown(scope, rng, dimension, filters, limit, offset)
    finally:
        con.close()


# Several dimensions' first rows in one scan: the rows are summed per (value, visit) of
# each dimension by GROUPING SETS (`d<i>` is the i-th dimension's value, NULL in the other
# sets; a shown value is never NULL), then per value as _ROWS sums them; `which` is the
# dimension's index, `total` its number of values.
_TABLES = """
SELECT which, value, visitors, visits, pageviews, conversions, converters, revenue, total
FROM (
    SELECT *, count(*) OVER (PARTITION BY which) AS total,
           row_number() OVER (PARTITION BY which ORDER BY visitors DESC, value) AS n
    FROM (
        SELECT which, value,
               {per_value}
        FROM (
            SELECT {which} AS which, coalesce({values}) AS value, visit_id,
                   any_value(visitor) AS visitor,
                   {per_visit}
            FROM (SELECT {columns}, visit_id, {visitor} AS visitor, kind, micros FROM rows)
            GROUP BY GROUPING SETS ({sets})
        )
        GROUP BY which, value
    )
)
WHERE n <= ?
ORDER BY which, n
"""


def _tables(
    scope: Scope, rng: DateRange, dimensions: list[str], filters: Sequence[Filter], limit: int
) -> dict[str, DimensionBreakdown]:
    """The first `limit` rows of each dimension over the scope's rows, in one query."""
    indexes = range(len(dimensions))
    sql = _TABLES.format(
        which="CASE " + " ".join(f"WHEN grouping(d{i}) = 0 THEN {i}" for i in indexes) + " END",
        values=", ".join(f"d{i}" for i in indexes),
        per_visit=_PER_VISIT,
        per_value=_PER_VALUE,
        columns=", ".join(f"{scope.shown(d)} AS d{i}" for i, d in enumerate(dimensions)),
        visitor=VISITOR_KEY,
        sets=", ".join(f"(d{i}, visit_id)" for i in indexes),
    )
    found: dict[int, list[tuple]] = {i: [] for i in indexes}
    for which, *row in scope.query(sql, [limit]):
        found[which].append(tuple(row))
    return {
        dimension: _result(
            rng, dimension, filters, found[i], int(found[i][0][-1]) if found[i] else 0, limit, 0
        )
        for i, dimension in enumerate(dimensions)
    }


def dimension_tables(
    site: Site, rng: DateRange, dimensions: Sequence[str], filters: Sequence[Filter], limit: int
) -> dict[str, DimensionBreakdown]:
    """The first `limit` rows of several dimensions over the range, after the filters: the
    rows dimension_rows gives, from one read of the range in one query (the dashboard's
    panels)."""
    wanted = list(dict.fromkeys(dimensions))
    if not wanted:
        return {}
    if not filters:  # over a long range, the rolled dimensions from the per-day rollups
        rollable = [d for d in wanted if d in ROLLED]
        rolled = rolled_tables(site, rng, rollable, limit) if rollable else None
        if rolled is not None:
            rest = [d for d in wanted if d not in rolled]
            if rest:
                rolled.update(_exact_tables(site, rng, rest, filters, limit))
            return {d: rolled[d] for d in wanted}
    return _exact_tables(site, rng, wanted, filters, limit)


def _exact_tables(
    site: Site, rng: DateRange, wanted: list[str], filters: Sequence[Filter], limit: int
) -> dict[str, DimensionBreakdown]:
    """dimension_tables' rows, read row by row."""
    con = connect()
    try:
        relation = events_relation(con, site.id, rng.start_utc, rng.end_utc)
        scope = Scope(con, relation, filters, wanted)
        if len(wanted) == 1:
            return {wanted[0]: _breakdown(scope, rng, wanted[0], filters, limit, 0)}
        return _tables(scope, rng, wanted, filters, limit)
    finally:
        con.close()
