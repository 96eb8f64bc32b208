"""the analytics store's segments: which Parquet files of the columnar copy are valid

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 14:00:00

The files live in the store directory (ANALYTICS_STORE_DIR); this table is their
validity. Nothing to backfill: the fold builds the segments.
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "analytics_store_segments",
        sa.Column("token", sa.String(32), primary_key=True),
        sa.Column("store", sa.String(32), nullable=False),
        sa.Column(
            "site_id",
            sa.Integer(),
            sa.ForeignKey("sites.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("span_start", sa.DateTime(), nullable=False),
        sa.Column("span_end", sa.DateTime(), nullable=False),
        sa.Column("lo", sa.DateTime(), nullable=False),
        sa.Column("hi", sa.DateTime(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_store_segments_site_span", "analytics_store_segments", ["site_id", "span_start"]
    )
    op.create_index("ix_store_segments_site_lo", "analytics_store_segments", ["site_id", "lo"])
    op.create_table(
        "analytics_store_edges",
        sa.Column(
            "token",
            sa.String(32),
            sa.ForeignKey("analytics_store_segments.token", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("visitor_id", sa.String(260), primary_key=True),
        sa.Column("lo", sa.DateTime(), primary_key=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("hi", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_store_edges_site_visitor", "analytics_store_edges", ["site_id", "visitor_id"]
    )


def downgrade():
    op.drop_index("ix_store_edges_site_visitor", table_name="analytics_store_edges")
    op.drop_table("analytics_store_edges")
    op.drop_index("ix_store_segments_site_lo", table_name="analytics_store_segments")
    op.drop_index("ix_store_segments_site_span", table_name="analytics_store_segments")
    op.drop_table("analytics_store_segments")
