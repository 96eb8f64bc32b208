"""browser events get an event_id space of their own; success rules remember who
registered their name (a backend's live key, a browser, or only test keys)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 09:00:00

Anyone can send browser events (the site key is public), so a browser's event_id must never
make a server event a duplicate: events get `from_browser` (set on the existing events sent
without an API key) and the partial unique index covers (site_id, event_id, from_browser).

Success rules get `origin`: "server", "browser" or "test". Existing rules take the most
trusted sender among their events (one pass over the success events); a rule none of whose
events is left keeps "server", as it was counted until now.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_PREDICATE = sa.text("event_id IS NOT NULL")
_INDEX = "uq_events_site_event_id"
_events = sa.table(
    "events",
    sa.column("api_key_id", sa.Integer()),
    sa.column("from_browser", sa.Boolean()),
)
# The rank of a success event's sender: 0 a test key, 1 a browser, 2 a live key.
_RANKED = sa.text(
    "SELECT site_id, name, MAX(CASE WHEN is_test THEN 0 WHEN from_browser THEN 1 ELSE 2 END)"
    " FROM events WHERE event_name = 'success' AND name IS NOT NULL GROUP BY site_id, name"
)
_ORIGINS = {0: "test", 1: "browser"}


def _unique_index(columns: list[str]) -> None:
    op.create_index(
        _INDEX,
        "events",
        columns,
        unique=True,
        sqlite_where=_PREDICATE,
        postgresql_where=_PREDICATE,
    )


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("from_browser", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(_events.update().where(_events.c.api_key_id.is_(None)).values(from_browser=True))
    op.drop_index(_INDEX, table_name="events")
    _unique_index(["site_id", "event_id", "from_browser"])

    with op.batch_alter_table("success_rules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(length=8), nullable=False, server_default="server")
        )
    bind = op.get_bind()
    changed = [
        {"origin": _ORIGINS[rank], "site_id": site_id, "name": name}
        for site_id, name, rank in bind.execute(_RANKED)
        if rank in _ORIGINS
    ]
    if changed:
        bind.execute(
            sa.text(
                "UPDATE success_rules SET origin = :origin"
                " WHERE site_id = :site_id AND name = :name"
            ),
            changed,
        )


def downgrade():
    with op.batch_alter_table("success_rules", schema=None) as batch_op:
        batch_op.drop_column("origin")
    # One space again: a browser event whose event_id a server event of its site also
    # carries keeps everything but that id (it is no longer deduplicated).
    op.execute(
        "UPDATE events SET event_id = NULL WHERE from_browser AND event_id IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM events AS server WHERE server.site_id = events.site_id"
        " AND server.event_id = events.event_id AND NOT server.from_browser)"
    )
    op.drop_index(_INDEX, table_name="events")
    _unique_index(["site_id", "event_id"])
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("from_browser")
