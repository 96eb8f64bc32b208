"""shared dashboards: read-only links to one site's reports (/share/<token>)

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-07 10:30:00

Read keys (dl_read_…) need no change of the schema: they are rows of api_keys whose kind
is "read" (the column holds up to 8 characters).
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "shared_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=100), nullable=True),
        sa.Column("frame_ancestors", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("shared_links") as batch:
        batch.create_index("ix_shared_links_site_id", ["site_id"], unique=False)


def downgrade():
    with op.batch_alter_table("shared_links") as batch:
        batch.drop_index("ix_shared_links_site_id")
    op.drop_table("shared_links")
