"""saved funnels, their matched events, visitor sessions and the cursors that feed them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "funnels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_funnels_site", "funnels", ["site_id"])
    op.create_table(
        "funnel_events",
        sa.Column("funnel_id", sa.Integer(), nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("visitor_id", sa.String(length=260), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("step_mask", sa.Integer(), nullable=False),
        sa.Column("value_micros", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["funnel_id"], ["funnels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("funnel_id", "event_id"),
    )
    op.create_index(
        "ix_funnel_events_funnel_visitor",
        "funnel_events",
        ["funnel_id", "visitor_id", "occurred_at"],
    )
    op.create_table(
        "funnel_attempts",
        sa.Column("funnel_id", sa.Integer(), nullable=False),
        sa.Column("start_event_id", BigId, nullable=False),
        sa.Column("visitor_id", sa.String(length=260), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("prev_ge", sa.DateTime(), nullable=False),
        sa.Column("next_gt", sa.DateTime(), nullable=False),
        *(sa.Column(f"g{k}", sa.BigInteger(), nullable=True) for k in range(2, 9)),
        *(sa.Column(f"v{k}", sa.BigInteger(), nullable=True) for k in range(1, 9)),
        sa.ForeignKeyConstraint(["funnel_id"], ["funnels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("funnel_id", "start_event_id"),
    )
    op.create_index(
        "ix_funnel_attempts_funnel_started",
        "funnel_attempts",
        ["funnel_id", "started_at", "prev_ge", "next_gt", "depth"],
    )
    op.create_index(
        "ix_funnel_attempts_funnel_visitor",
        "funnel_attempts",
        ["funnel_id", "visitor_id", "started_at"],
    )
    op.create_table(
        "funnel_excluded",
        sa.Column("id", BigId, nullable=False),
        sa.Column("funnel_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["funnel_id"], ["funnels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_funnel_excluded_funnel_bucket", "funnel_excluded", ["funnel_id", "bucket"]
    )
    op.create_table(
        "visitor_sessions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.String(length=260), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("path_count", sa.Integer(), nullable=False),
        sa.Column("paths", sa.Text(), nullable=False),
        sa.Column("cuts", sa.String(length=60), nullable=False),
        sa.Column("tail", sa.Text(), nullable=False),
        sa.Column("tail_cuts", sa.String(length=60), nullable=False),
        sa.Column("last_path", sa.String(length=2048), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("converted", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_visitor_sessions_site_started", "visitor_sessions", ["site_id", "started_at"]
    )
    op.create_index(
        "ix_visitor_sessions_visitor", "visitor_sessions", ["site_id", "visitor_id", "ended_at"]
    )
    op.create_table(
        "derived_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade():
    op.drop_table("derived_cursors")
    op.drop_index("ix_visitor_sessions_visitor", table_name="visitor_sessions")
    op.drop_index("ix_visitor_sessions_site_started", table_name="visitor_sessions")
    op.drop_table("visitor_sessions")
    op.drop_index("ix_funnel_excluded_funnel_bucket", table_name="funnel_excluded")
    op.drop_table("funnel_excluded")
    op.drop_index("ix_funnel_attempts_funnel_visitor", table_name="funnel_attempts")
    op.drop_index("ix_funnel_attempts_funnel_started", table_name="funnel_attempts")
    op.drop_table("funnel_attempts")
    op.drop_index("ix_funnel_events_funnel_visitor", table_name="funnel_events")
    op.drop_table("funnel_events")
    op.drop_index("ix_funnels_site", table_name="funnels")
    op.drop_table("funnels")
