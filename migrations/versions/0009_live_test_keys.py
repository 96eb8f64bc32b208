"""test keys, test events, the refused-request log of the live view, the deletion audit log

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-01 00:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

_TEST = sa.text("is_test")


def upgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="live")
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_events_site_id", ["site_id", "id"])
        batch_op.create_index(
            "ix_events_site_test",
            ["site_id", "id"],
            sqlite_where=_TEST,
            postgresql_where=_TEST,
        )
    op.create_table(
        "refused_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("errors", sa.Text(), nullable=True),
        sa.Column("excerpt", sa.String(length=600), nullable=True),
        sa.Column("suppressed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_refused_site_id", "refused_requests", ["site_id", "id"])
    op.create_index("ix_refused_key_id", "refused_requests", ["api_key_id", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("events_deleted", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_site_id", "audit_log", ["site_id", "id"])


def downgrade():
    op.drop_index("ix_audit_site_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_refused_key_id", table_name="refused_requests")
    op.drop_index("ix_refused_site_id", table_name="refused_requests")
    op.drop_table("refused_requests")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_site_test")
        batch_op.drop_index("ix_events_site_id")
        batch_op.drop_column("is_test")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("kind")
