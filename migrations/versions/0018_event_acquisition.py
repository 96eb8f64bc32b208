"""where visitors come from: acquisition columns on events (source, channel, campaign
parameters, referrer, device, browser, OS, country), derived at ingestion

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-08 09:00:00

Every column is nullable and added without a default, so existing rows are not rewritten:
NULL means the event was stored before these columns existed ("(not recorded)" in the
reports); new events store "" for a value they do not have ("(none)").
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None

# name -> length, as models.ACQUISITION_LENGTHS has them.
_COLUMNS = {
    "source": 100,
    "channel": 20,
    "medium": 100,
    "campaign": 100,
    "term": 100,
    "content": 100,
    "referrer": 500,
    "device": 10,
    "browser": 50,
    "browser_version": 20,
    "os": 50,
    "os_version": 20,
    "country": 2,
}


def upgrade():
    # In place on SQLite (ADD COLUMN): copying the events table would take as long as it
    # is big, and holding the write lock all that time.
    with op.batch_alter_table("events", recreate="never") as batch_op:
        for name, length in _COLUMNS.items():
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade():
    with op.batch_alter_table("events", recreate="never") as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
