"""Tables of the funnel and journey reports: saved funnels and what is derived from events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ...models import BigId, Model, utcnow


class Funnel(Model):
    """A saved funnel of one site: a name and its definition (JSON of steps, window, mode)."""

    __tablename__ = "funnels"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    definition: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# One name per site, whatever its case: of two saves racing for a name, one fails here.
Index("ux_funnels_site_name", Funnel.site_id, func.lower(Funnel.name), unique=True)

# Every funnel has one current derivation (retired_at NULL); the partial unique index says so.
_CURRENT = text("retired_at IS NULL")


class FunnelDerivation(Model):
    """One derivation of a saved funnel: its definition in one time zone's local days.

    The derived rows (funnel_events, funnel_attempts, funnel_excluded) belong to a
    derivation, not to the funnel, and its cursor is cursor_name(id). Editing a funnel's
    steps, window or mode, or a change of the site's zone, retires the current derivation
    and starts a new one; deleting the funnel retires it. Either is one small write: the
    retired rows are purged afterwards in short batches (derivation.purge_retired), and
    the derivation row goes last. No foreign key ties a derivation to its funnel, so
    deleting a funnel cascades to nothing; ids are never reused (AUTOINCREMENT on SQLite,
    a sequence on PostgreSQL), so a late writer can never mistake a new derivation for a
    purged one.
    """

    __tablename__ = "funnel_derivations"
    __table_args__ = (
        Index(
            "ux_funnel_derivations_current",
            "funnel_id",
            unique=True,
            sqlite_where=_CURRENT,
            postgresql_where=_CURRENT,
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The site, kept after the funnel is gone: an erasure also clears retired derivations.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    funnel_id: Mapped[int] = mapped_column(Integer)
    # The time zone whose local days its attempts are kept in (one best attempt per visitor
    # and local day); None only for derivations made before zones were kept (then every
    # attempt was kept; the first catch-up sets it and keeps one per day from there on).
    days_tz: Mapped[str | None] = mapped_column(String(64))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FunnelEvent(Model):
    """A visitor's event that matches a step of a funnel derivation (bit k of step_mask:
    step k+1)."""

    __tablename__ = "funnel_events"
    __table_args__ = (
        Index("ix_funnel_events_derivation_visitor", "derivation_id", "visitor_id", "occurred_at"),
    )

    derivation_id: Mapped[int] = mapped_column(
        ForeignKey("funnel_derivations.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(260))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    step_mask: Mapped[int] = mapped_column(Integer)
    value_micros: Mapped[int | None] = mapped_column(BigInteger)


NEVER_BEFORE = datetime(1900, 1, 1)
NEVER_AFTER = datetime(9999, 12, 31)


ATTEMPT_COLUMNS = (
    "depth",
    *(f"g{k}" for k in range(2, 9)),
    *(f"v{k}" for k in range(1, 9)),
)


class FunnelAttempt(Model):
    """A visitor's step-1 event of a funnel derivation and how far it got (ordered mode).

    Only the best attempt of each visitor and local day (of the site's time zone) is kept:
    the furthest one, the earliest of those. A range is whole local days, so any other
    attempt of that day is never a visitor's best in any range.

    g<k>: microseconds from step k-1 to step k; v<k>: value (micros) of the event at step k.
    prev_ge: when the visitor's previous attempt that got at least as far started (or
    NEVER_BEFORE); next_gt: when their next attempt that got further started (or
    NEVER_AFTER). So an attempt is its visitor's best in a range [a, b) exactly when it
    starts in the range, prev_ge < a and next_gt >= b: one row per visitor, no sort.
    """

    __tablename__ = "funnel_attempts"
    __table_args__ = (
        # Covers a whole report (visitors, revenue and the gaps' medians): the range is
        # read from the index alone, never from the table.
        Index(
            "ix_funnel_attempts_derivation_range",
            "derivation_id",
            "started_at",
            "prev_ge",
            "next_gt",
            *ATTEMPT_COLUMNS,
        ),
        Index("ix_funnel_attempts_derivation_visitor", "derivation_id", "visitor_id", "started_at"),
    )

    derivation_id: Mapped[int] = mapped_column(
        ForeignKey("funnel_derivations.id", ondelete="CASCADE"), primary_key=True
    )
    start_event_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(260))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    depth: Mapped[int] = mapped_column(Integer)
    prev_ge: Mapped[datetime] = mapped_column(DateTime)
    next_gt: Mapped[datetime] = mapped_column(DateTime)
    g2: Mapped[int | None] = mapped_column(BigInteger)
    g3: Mapped[int | None] = mapped_column(BigInteger)
    g4: Mapped[int | None] = mapped_column(BigInteger)
    g5: Mapped[int | None] = mapped_column(BigInteger)
    g6: Mapped[int | None] = mapped_column(BigInteger)
    g7: Mapped[int | None] = mapped_column(BigInteger)
    g8: Mapped[int | None] = mapped_column(BigInteger)
    v1: Mapped[int | None] = mapped_column(BigInteger)
    v2: Mapped[int | None] = mapped_column(BigInteger)
    v3: Mapped[int | None] = mapped_column(BigInteger)
    v4: Mapped[int | None] = mapped_column(BigInteger)
    v5: Mapped[int | None] = mapped_column(BigInteger)
    v6: Mapped[int | None] = mapped_column(BigInteger)
    v7: Mapped[int | None] = mapped_column(BigInteger)
    v8: Mapped[int | None] = mapped_column(BigInteger)


class FunnelExcluded(Model):
    """Events without a visitor that match a funnel derivation's steps, per UTC quarter hour.

    Quarter hours, because every time zone's midnight falls on one: any local-day range
    is a whole number of buckets.
    """

    __tablename__ = "funnel_excluded"
    __table_args__ = (Index("ix_funnel_excluded_derivation_bucket", "derivation_id", "bucket"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    derivation_id: Mapped[int] = mapped_column(
        ForeignKey("funnel_derivations.id", ondelete="CASCADE")
    )
    bucket: Mapped[datetime] = mapped_column(DateTime)
    events: Mapped[int] = mapped_column(Integer)


JOURNEY_KEYS = tuple(f"j{n}" for n in range(1, 11))


class VisitorSession(Model):
    """One session of a visitor: events with no 30-minute gap, and its collapsed page paths."""

    __tablename__ = "visitor_sessions"
    __table_args__ = (
        # Covers the journeys report (head journeys of any length, the rule filter): a
        # range is grouped from the index alone, by integer keys, never from the table.
        Index(
            "ix_visitor_sessions_site_journeys",
            "site_id",
            "started_at",
            *JOURNEY_KEYS,
            "converted",
            "visitor_id",
            "rules",
        ),
        Index("ix_visitor_sessions_visitor", "site_id", "visitor_id", "ended_at"),
        # Covers the visit figures of stats.json (reports.visits): read from the index alone.
        Index(
            "ix_visitor_sessions_site_visits",
            "site_id",
            "started_at",
            "browser_pageviews",
            "events",
            "duration_us",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    visitor_id: Mapped[str] = mapped_column(String(260))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime] = mapped_column(DateTime)
    events: Mapped[int] = mapped_column(Integer)
    # Page views sent by a browser (a session with one is a visit), and ended - started.
    browser_pageviews: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duration_us: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Collapsed path sequence: all steps counted, the first ten kept ("\n"-joined), and the
    # end offset of each kept step in that text (zero-padded, 5 digits each) so SQL can cut
    # the first N steps with substr() on any engine.
    path_count: Mapped[int] = mapped_column(Integer)
    paths: Mapped[str] = mapped_column(Text)
    cuts: Mapped[str] = mapped_column(String(60))
    # The last ten steps the same way: "ends at" journeys are cut from the end.
    tail: Mapped[str] = mapped_column(Text)
    tail_cuts: Mapped[str] = mapped_column(String(60))
    last_path: Mapped[str] = mapped_column(String(2048))
    # Success rules converted in the session, as "|a|b|" (empty: none); converted = 0/1.
    rules: Mapped[str] = mapped_column(Text)
    converted: Mapped[int] = mapped_column(Integer)
    # j<n>: sessions.journey_key of the first n kept steps (of all of them when fewer).
    j1: Mapped[int | None] = mapped_column(BigInteger)
    j2: Mapped[int | None] = mapped_column(BigInteger)
    j3: Mapped[int | None] = mapped_column(BigInteger)
    j4: Mapped[int | None] = mapped_column(BigInteger)
    j5: Mapped[int | None] = mapped_column(BigInteger)
    j6: Mapped[int | None] = mapped_column(BigInteger)
    j7: Mapped[int | None] = mapped_column(BigInteger)
    j8: Mapped[int | None] = mapped_column(BigInteger)
    j9: Mapped[int | None] = mapped_column(BigInteger)
    j10: Mapped[int | None] = mapped_column(BigInteger)


class DerivedCursor(Model):
    """How far (events.id) a derived table has read the events."""

    __tablename__ = "derived_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EventKind(Model):
    """One kind of event of a site: an event name, a page path and a success rule name.

    The unit of the kind index (analytics.kinds): a funnel step matches whole kinds.
    `digest` (SHA-256 of the three) keeps the unique key short whatever the path's length.
    """

    __tablename__ = "event_kinds"
    __table_args__ = (UniqueConstraint("site_id", "digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    event_name: Mapped[str] = mapped_column(String(16))
    page_path: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(100))


class KindEvent(Model):
    """A counted event filed under its kind: what an unsaved funnel reads of it.

    Keyed (site, kind, time, id): the events of a few kinds over a range are a few
    sequential reads of the key (on SQLite the table is the key: WITHOUT ROWID), where the
    events table would be read whole over the range.
    """

    __tablename__ = "kind_events"
    __table_args__ = {"sqlite_with_rowid": False}

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    kind_id: Mapped[int] = mapped_column(
        ForeignKey("event_kinds.id", ondelete="CASCADE"), primary_key=True
    )
    occurred_at: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(260))
    value_micros: Mapped[int | None] = mapped_column(BigInteger)
