"""visits and places: visitor sessions count the browser's page views and their duration,
so that stats.json's visit figures (visits, bounce rate, visit duration) read the sessions
alone; events get region and city (from a GEOIP_DATABASE)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-09 10:00:00

region and city are nullable and added without a default (NULL: not recorded), in place.
Existing sessions get both figures here, in batches by id, from the events they were
derived from (those up to the sessions' cursor), so no re-derivation is needed.
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

BATCH = 5_000
_INDEX = "ix_visitor_sessions_site_visits"
_MICROSECOND = timedelta(microseconds=1)


def _backfill(bind) -> None:
    """Fill browser_pageviews and duration_us of the stored sessions."""
    sessions = sa.table(
        "visitor_sessions",
        sa.column("id"),
        sa.column("site_id"),
        sa.column("visitor_id"),
        sa.column("started_at", sa.DateTime()),
        sa.column("ended_at", sa.DateTime()),
        sa.column("browser_pageviews"),
        sa.column("duration_us"),
    )
    events = sa.table(
        "events",
        sa.column("id"),
        sa.column("site_id"),
        sa.column("visitor_id"),
        sa.column("occurred_at", sa.DateTime()),
        sa.column("event_name"),
        sa.column("from_browser", sa.Boolean()),
        sa.column("is_test", sa.Boolean()),
    )
    cursors = sa.table("derived_cursors", sa.column("name"), sa.column("last_event_id"))
    position = bind.execute(
        sa.select(cursors.c.last_event_id).where(cursors.c.name == "sessions")
    ).scalar()
    views = (
        sa.select(sa.func.count())
        .where(
            events.c.site_id == sessions.c.site_id,
            events.c.visitor_id == sessions.c.visitor_id,
            events.c.occurred_at >= sessions.c.started_at,
            events.c.occurred_at <= sessions.c.ended_at,
            events.c.event_name == "pageview",
            events.c.from_browser.is_(True),
            events.c.is_test.is_(False),
            events.c.id <= (position or 0),
        )
        .scalar_subquery()
    )
    update = (
        sa.update(sessions)
        .where(sessions.c.id == sa.bindparam("session_id"))
        .values(browser_pageviews=sa.bindparam("views"), duration_us=sa.bindparam("duration"))
    )
    after = 0
    while True:
        rows = bind.execute(
            sa.select(sessions.c.id, sessions.c.started_at, sessions.c.ended_at, views)
            .where(sessions.c.id > after)
            .order_by(sessions.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            update,
            [
                {
                    "session_id": i,
                    "views": int(n),
                    "duration": (ended - started) // _MICROSECOND,
                }
                for i, started, ended, n in rows
            ],
        )
        after = rows[-1][0]


def upgrade():
    with op.batch_alter_table("events", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("region", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("city", sa.String(length=100), nullable=True))
    with op.batch_alter_table("visitor_sessions", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("browser_pageviews", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("duration_us", sa.BigInteger(), nullable=False, server_default="0")
        )
    _backfill(op.get_bind())
    op.create_index(
        _INDEX,
        "visitor_sessions",
        ["site_id", "started_at", "browser_pageviews", "events", "duration_us"],
    )


def downgrade():
    op.drop_index(_INDEX, table_name="visitor_sessions")
    with op.batch_alter_table("visitor_sessions", recreate="never") as batch_op:
        batch_op.drop_column("duration_us")
        batch_op.drop_column("browser_pageviews")
    with op.batch_alter_table("events", recreate="never") as batch_op:
        batch_op.drop_column("city")
        batch_op.drop_column("region")
