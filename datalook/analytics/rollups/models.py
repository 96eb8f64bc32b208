"""Summary tables of the reports, maintained from the events by analytics.rollups.fold.

Rules, pages and properties are kept per UTC hour and per UTC day (`hours` 1 or 24): a
long range reads its whole days from the day rows, its edges from the hour rows. On SQLite
the tables are WITHOUT ROWID, so a range is one sequential read of the primary key.

Every bucket is a UTC hour, day or week: changing a site's time zone
changes how reports group these buckets, never the buckets themselves. Money is kept as
whole units plus the sum of the remaining millionths, two integers that each stay far
inside 64 bits where one sum of millionths could overflow in SQLite.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ...models import Model

# Longest page path, property key and property value kept in the summaries: a longer one is
# cut (the raw event keeps it whole), so that a summary row always fits an index entry.
MAX_PAGE = 512
MAX_KEY = 128
MAX_VALUE = 200


def _site_fk() -> Mapped[int]:
    """The site column of a summary: its rows go with the site."""
    return mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)


class SummaryCursor(Model):
    """How far the summaries have folded the events table (one row per database)."""

    __tablename__ = "analytics_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped by every fold and rebuild: a writer whose read state is stale finds it changed.
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class HourlyTotals(Model):
    """A site's event counts and revenue in one UTC hour."""

    __tablename__ = "analytics_hourly"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = _site_fk()
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    pageviews: Mapped[int] = mapped_column(BigInteger, default=0)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    custom: Mapped[int] = mapped_column(BigInteger, default=0)
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_units: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_rest: Mapped[int] = mapped_column(BigInteger, default=0)
    without_visitor: Mapped[int] = mapped_column(BigInteger, default=0)


class HourlyRule(Model):
    """One success rule's conversions and revenue in one UTC hour (hours=1) or day (24)."""

    __tablename__ = "analytics_rule_hourly"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = _site_fk()
    hours: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1 or 24
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_units: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_rest: Mapped[int] = mapped_column(BigInteger, default=0)


class HourlyPage(Model):
    """Events on one page path in one UTC hour (hours=1) or UTC day (hours=24)."""

    __tablename__ = "analytics_page_hourly"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = _site_fk()
    hours: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1 or 24
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    page_path: Mapped[str] = mapped_column(String(MAX_PAGE), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)


class HourlyProperty(Model):
    """Events, conversions and revenue of one property value in one UTC hour or day."""

    __tablename__ = "analytics_property_hourly"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = _site_fk()
    key: Mapped[str] = mapped_column(String(MAX_KEY), primary_key=True)
    hours: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1 or 24
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    value: Mapped[str] = mapped_column(String(MAX_VALUE), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    conversions: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_units: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_rest: Mapped[int] = mapped_column(BigInteger, default=0)


class VisitorSketch(Model):
    """A HyperLogLog sketch of the visitors of one dimension in one UTC hour, day or week
    (hours 1, 24 or 168; weeks start on Monday).

    dim is "" (the site), "c" (anyone who converted), "r:<rule>" or "p:<page path>".
    """

    __tablename__ = "analytics_visitor_sketches"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = _site_fk()
    hours: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 24 or 168
    dim: Mapped[str] = mapped_column(String(MAX_PAGE + 2), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)


class RuleDisplay(Model):
    """How the dashboard shows a success rule: a display name, archived or not."""

    __tablename__ = "analytics_rule_display"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = _site_fk()
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(100))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
