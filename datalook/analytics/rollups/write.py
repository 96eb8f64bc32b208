"""Writing an Accumulator's increments into the rollup tables and visitor sketches.

Counts and amounts are added to the stored rows (INSERT … ON CONFLICT DO UPDATE); a
sketch is merged with the stored one by the caller, which read it beforehand
(``stored_sketches``), and replaces it. The statements are compiled once and run on the
driver's cursor with rows as tuples: a fold of a few thousand events writes thousands of
rows, and SQLAlchemy's per-row parameter processing cost more than the upserts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Dialect

from ...sql.compiled import CompiledStatement, StatementCache
from ...sql.connections import dialect_insert
from .. import settled, sketches
from .accumulate import Accumulator
from .models import HourlyPage, HourlyProperty, HourlyRule, HourlyTotals, VisitorSketch


def _add_to_existing(table, keys: list[str], counts: list[str], dialect: str):
    """INSERT … ON CONFLICT DO UPDATE that adds the counts to an existing row."""
    statement = dialect_insert(table.__table__, dialect)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.__table__.c[name] + statement.excluded[name] for name in counts},
    )


def _replacing_sketch(dialect: str):
    """INSERT … ON CONFLICT DO UPDATE that replaces a stored sketch."""
    statement = dialect_insert(VisitorSketch.__table__, dialect)
    return statement.on_conflict_do_update(
        index_elements=_SKETCH_KEYS, set_={"sketch": statement.excluded.sketch}
    )


_MONEY = ["revenue_units", "revenue_rest"]
_TOTALS = ["events", "pageviews", "clicks", "custom", "conversions", *_MONEY, "without_visitor"]
_RULE_COUNTS = ["conversions", *_MONEY]
_PROPERTY_COUNTS = ["events", "conversions", *_MONEY]
_SKETCH_KEYS = ["site_id", "hours", "dim", "start"]
# Each statement with the columns of its rows: the key's, then the counts'.
_COLUMNS = {
    "totals": ["site_id", "hour", *_TOTALS],
    "rules": ["site_id", "hours", "hour", "name", *_RULE_COUNTS],
    "pages": ["site_id", "hours", "hour", "page_path", "events"],
    "properties": ["site_id", "key", "hours", "hour", "value", *_PROPERTY_COUNTS],
    "sketches": [*_SKETCH_KEYS, "sketch"],
}


def _compiled(build: Callable[[str], Any]) -> Callable[[Dialect], CompiledStatement]:
    """A StatementCache builder: the statement `build(dialect name)` makes, compiled."""
    return lambda dialect: CompiledStatement(build(dialect.name), dialect)


_STATEMENTS = StatementCache(
    {
        "totals": _compiled(
            lambda d: _add_to_existing(HourlyTotals, _COLUMNS["totals"][:2], _TOTALS, d)
        ),
        "rules": _compiled(
            lambda d: _add_to_existing(HourlyRule, _COLUMNS["rules"][:4], _RULE_COUNTS, d)
        ),
        "pages": _compiled(
            lambda d: _add_to_existing(HourlyPage, _COLUMNS["pages"][:4], ["events"], d)
        ),
        "properties": _compiled(
            lambda d: _add_to_existing(
                HourlyProperty, _COLUMNS["properties"][:5], _PROPERTY_COUNTS, d
            )
        ),
        "sketches": _compiled(_replacing_sketch),
    }
)


def _upsert(connection, name: str, rows: list[tuple]) -> None:
    """Run statement `name` once per row (tuples in its _COLUMNS order), in one driver
    call."""
    if not rows:
        return
    dialect: Dialect = connection.dialect
    statement = _STATEMENTS.get(name, dialect)
    bind = statement.binder(_COLUMNS[name], {})
    cursor = connection.connection.cursor()
    try:
        statement.execute_bound(cursor, bind(rows))
    finally:
        cursor.close()


def write(connection, acc: Accumulator, stored_sketches: dict, dialect: str) -> None:
    """Add an accumulator's rollups to the tables and store its merged sketches (and move
    the settled generation on if settled buckets change: see analytics.settled)."""
    if acc.totals and settled.touches_settled(min(hour for _site, hour in acc.totals)):
        settled.bump(connection)
    _upsert(connection, "totals", [(s, h, *v) for (s, h), v in acc.totals.items()])
    _upsert(connection, "rules", [(*key, *v) for key, v in acc.rules.items()])
    _upsert(connection, "pages", [(*key, v) for key, v in acc.pages.items()])
    _upsert(connection, "properties", [(*key, *v) for key, v in acc.properties.items()])
    _upsert(
        connection,
        "sketches",
        [
            (*key, sketches.combine(stored_sketches.get(key), fresh))
            for key, fresh in acc.sketches_by_key().items()
        ],
    )


def stored_sketches(connection, keys: list[tuple]) -> dict:
    """The stored bytes of the sketches with these keys (site, hours, dim, start).

    One query per site and span over the keys' time range and dimensions (a list of row
    values in IN was planned badly by PostgreSQL: about a second per fold).
    """
    wanted = set(keys)
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for site, hours, dim, start in keys:
        groups[(site, hours)].append((dim, start))
    found: dict = {}
    s = VisitorSketch
    for (site, hours), members in groups.items():
        dims = sorted({dim for dim, _ in members})
        low, high = min(t for _, t in members), max(t for _, t in members)
        for offset in range(0, len(dims), 500):
            rows = connection.execute(
                select(s.dim, s.start, s.sketch).where(
                    s.site_id == site,
                    s.hours == hours,
                    s.dim.in_(dims[offset : offset + 500]),
                    s.start >= low,
                    s.start <= high,
                )
            )
            for dim, start, data in rows:
                if (site, hours, dim, start) in wanted:
                    found[(site, hours, dim, start)] = data
    return found
