"""a rotated key remembers the key that replaced it

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-01 00:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaced_by_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_api_keys_replaced_by_id",
            "api_keys",
            ["replaced_by_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_keys_replaced_by_id", type_="foreignkey")
        batch_op.drop_column("replaced_by_id")
