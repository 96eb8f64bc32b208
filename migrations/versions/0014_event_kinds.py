"""the kind index of unsaved funnels: event_kinds and kind_events (filled by the fold
process from the events; until it has caught up, funnels read the events)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 07:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "event_kinds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("event_name", sa.String(length=16), nullable=False),
        sa.Column("page_path", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "digest"),
    )
    op.create_table(
        "kind_events",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kind_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("visitor_id", sa.String(length=260), nullable=False),
        sa.Column("value_micros", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["kind_id"], ["event_kinds.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "kind_id", "occurred_at", "event_id"),
        sqlite_with_rowid=False,
    )


def downgrade():
    op.drop_table("kind_events")
    op.drop_table("event_kinds")
    op.execute("DELETE FROM derived_cursors WHERE name = 'kinds'")
