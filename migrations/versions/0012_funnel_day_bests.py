"""saved funnels keep one attempt per visitor and local day; the attempts' range index covers
the whole report

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-01 04:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = ["depth", *(f"g{k}" for k in range(2, 9)), *(f"v{k}" for k in range(1, 9))]


def upgrade():
    # Existing funnels keep every attempt (days_tz stays None): a superset, still exact.
    with op.batch_alter_table("funnels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("days_tz", sa.String(length=64), nullable=True))
    op.drop_index("ix_funnel_attempts_funnel_started", table_name="funnel_attempts")
    op.create_index(
        "ix_funnel_attempts_funnel_range",
        "funnel_attempts",
        ["funnel_id", "started_at", "prev_ge", "next_gt", *_COLUMNS],
    )


def downgrade():
    op.drop_index("ix_funnel_attempts_funnel_range", table_name="funnel_attempts")
    op.create_index(
        "ix_funnel_attempts_funnel_started",
        "funnel_attempts",
        ["funnel_id", "started_at", "prev_ge", "next_gt", "depth"],
    )
    with op.batch_alter_table("funnels", schema=None) as batch_op:
        batch_op.drop_column("days_tz")
