"""event_id uniqueness as a partial index: events without an event_id write no entry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:50:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PREDICATE = sa.text("event_id IS NOT NULL")


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_events_site_event_id", type_="unique")
        batch_op.create_index(
            "uq_events_site_event_id",
            ["site_id", "event_id"],
            unique=True,
            sqlite_where=_PREDICATE,
            postgresql_where=_PREDICATE,
        )


def downgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("uq_events_site_event_id")
        batch_op.create_unique_constraint("uq_events_site_event_id", ["site_id", "event_id"])
