"""The table that says which Parquet segments of the store are valid (the database's word).

The files are only a cache of the events table: a segment is valid while its row exists,
and whatever could change its rows deletes the row in the transaction that makes the
change (store.invalidate). The files of deleted rows are removed later (store.gc). A
segment's edges say which visitors' later events could change it from outside its span.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ...models import Model, utcnow


class StoreSegment(Model):
    """One valid segment: the copy's rows of one site's counted events in [span_start,
    span_end) (a UTC day or hour), in the file named by `token` in the store `store` (a
    directory; one per host unless shared). [lo, hi] bounds every event the build read
    (whole visits reach outside the span, and so do the events that could change them);
    `events` is its row count (0: no file)."""

    __tablename__ = "analytics_store_segments"
    __table_args__ = (
        Index("ix_store_segments_site_span", "site_id", "span_start"),
        Index("ix_store_segments_site_lo", "site_id", "lo"),
    )

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    store: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    span_start: Mapped[datetime] = mapped_column(DateTime)
    span_end: Mapped[datetime] = mapped_column(DateTime)
    lo: Mapped[datetime] = mapped_column(DateTime)
    hi: Mapped[datetime] = mapped_column(DateTime)
    events: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StoreEdge(Model):
    """A visit of a segment's rows that an event outside its span could still change: one
    within GAP of its start or end. [lo, hi] is the visit (its first and last events): an
    event of `visitor_id` within GAP of it joins it. Gone with its segment."""

    __tablename__ = "analytics_store_edges"
    __table_args__ = (Index("ix_store_edges_site_visitor", "site_id", "visitor_id"),)

    token: Mapped[str] = mapped_column(
        ForeignKey("analytics_store_segments.token", ondelete="CASCADE"), primary_key=True
    )
    visitor_id: Mapped[str] = mapped_column(String(260), primary_key=True)
    lo: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    hi: Mapped[datetime] = mapped_column(DateTime)


class SessionDay(Model):
    """The version of one site's sessions that started on one UTC day (`day`, its
    midnight): every change to those sessions moves it on in the same transaction
    (store.session_days.bump). No row: version 0."""

    __tablename__ = "session_days"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class SessionDayFile(Model):
    """The file of one site's sessions of one UTC day in the store `store`, built from the
    day's `version`: current while that is still the day's version. `sessions` is its row
    count (0: no file, the day has no session)."""

    __tablename__ = "session_day_files"

    store: Mapped[str] = mapped_column(String(32), primary_key=True)
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(32))
    sessions: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
