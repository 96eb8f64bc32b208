"""the browser SDK: public site keys, allowed origins, DNT setting, daily visitor salts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:40:00

"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("allowed_origins", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("respect_dnt", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("first_pageview_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("first_pageview_path", sa.String(length=2048), nullable=True))
        batch_op.create_unique_constraint("uq_sites_site_key", ["site_key"])
    # Every existing site gets its public key now, as new sites do when they are created.
    sites = sa.table("sites", sa.column("id", sa.Integer), sa.column("site_key", sa.String))
    connection = op.get_bind()
    for (site_id,) in connection.execute(sa.select(sites.c.id)).all():
        connection.execute(
            sites.update()
            .where(sites.c.id == site_id)
            .values(site_key=f"dls_{secrets.token_urlsafe(18)}")
        )
    op.create_table(
        "visitor_salts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade():
    op.drop_table("visitor_salts")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_constraint("uq_sites_site_key", type_="unique")
        batch_op.drop_column("first_pageview_path")
        batch_op.drop_column("first_pageview_at")
        batch_op.drop_column("respect_dnt")
        batch_op.drop_column("allowed_origins")
        batch_op.drop_column("site_key")
