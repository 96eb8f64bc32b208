"""identity: the anonymous id of browser events, and links of anonymous ids to users

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 10:00:00

events.anonymous_id is nullable and added without a default, so existing rows are not
rewritten (events stored before it have no anonymous id, and no link can join them).
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    # In place on SQLite (ADD COLUMN), as 0018: no copy of the events table.
    with op.batch_alter_table("events", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("anonymous_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("sites", recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column(
                "visitor_ids", sa.String(length=12), server_default="cookieless", nullable=False
            )
        )
    op.create_index(
        "ix_events_site_anonymous",
        "events",
        ["site_id", "anonymous_id"],
        sqlite_where=sa.text("anonymous_id IS NOT NULL"),
        postgresql_where=sa.text("anonymous_id IS NOT NULL"),
    )
    op.create_table(
        "visitor_links",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("anonymous_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("pending", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "anonymous_id"),
    )
    op.create_index("ix_visitor_links_user", "visitor_links", ["site_id", "user_id"])
    op.create_index(
        "ix_visitor_links_pending",
        "visitor_links",
        ["created_at"],
        sqlite_where=sa.text("pending"),
        postgresql_where=sa.text("pending"),
    )


def downgrade():
    op.drop_index("ix_visitor_links_pending", table_name="visitor_links")
    op.drop_index("ix_visitor_links_user", table_name="visitor_links")
    op.drop_table("visitor_links")
    op.drop_index("ix_events_site_anonymous", table_name="events")
    with op.batch_alter_table("events", recreate="never") as batch_op:
        batch_op.drop_column("anonymous_id")
    with op.batch_alter_table("sites", recreate="never") as batch_op:
        batch_op.drop_column("visitor_ids")

