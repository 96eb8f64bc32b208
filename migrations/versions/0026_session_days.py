"""the sessions' day versions and their Parquet files (the journeys' copy of settled days)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 22:30:00

`session_days` is the version of a site's sessions of one UTC day, moved on by every change
to them; `session_day_files` says which day file of a store was built from which version.
Nothing to backfill: the fold builds the files.
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def _site():
    """The site column of both tables (part of their key)."""
    return sa.Column(
        "site_id",
        sa.Integer(),
        sa.ForeignKey("sites.id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade():
    op.create_table(
        "session_days",
        _site(),
        sa.Column("day", sa.DateTime(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "session_day_files",
        sa.Column("store", sa.String(32), primary_key=True),
        _site(),
        sa.Column("day", sa.DateTime(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table("session_day_files")
    op.drop_table("session_days")
