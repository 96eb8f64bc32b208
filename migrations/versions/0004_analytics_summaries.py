"""analytics summaries: hourly and daily rollups, visitor sketches, the fold cursor, rule display

Revision ID: 0004
Revises: 0008
Create Date: 2026-12-01 01:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0008"
branch_labels = None
depends_on = None


def _site():
    return sa.Column(
        "site_id", sa.Integer(), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    )


def _count(name):
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade():
    op.create_table(
        "analytics_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        _count("last_event_id"),
        _count("version"),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    )
    op.execute(
        "INSERT INTO analytics_cursor (name, last_event_id, version) VALUES ('events', 0, 0)"
    )
    money = ["revenue_units", "revenue_rest"]
    op.create_table(
        "analytics_hourly",
        _site(),
        sa.Column("hour", sa.DateTime(), nullable=False),
        *[
            _count(name)
            for name in ["events", "pageviews", "clicks", "custom", "conversions", *money]
        ],
        _count("without_visitor"),
        sa.PrimaryKeyConstraint("site_id", "hour"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_rule_hourly",
        _site(),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        *[_count(name) for name in ["conversions", *money]],
        sa.PrimaryKeyConstraint("site_id", "hours", "hour", "name"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_page_hourly",
        _site(),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("page_path", sa.String(512), nullable=False),
        _count("events"),
        sa.PrimaryKeyConstraint("site_id", "hours", "hour", "page_path"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_property_hourly",
        _site(),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        *[_count(name) for name in ["events", "conversions", *money]],
        sa.PrimaryKeyConstraint("site_id", "key", "hours", "hour", "value"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_visitor_sketches",
        _site(),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("dim", sa.String(514), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "hours", "dim", "start"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "analytics_rule_display",
        _site(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("site_id", "name"),
        sqlite_with_rowid=False,
    )


def downgrade():
    for name in [
        "analytics_rule_display",
        "analytics_visitor_sketches",
        "analytics_property_hourly",
        "analytics_page_hourly",
        "analytics_rule_hourly",
        "analytics_hourly",
        "analytics_cursor",
    ]:
        op.drop_table(name)
