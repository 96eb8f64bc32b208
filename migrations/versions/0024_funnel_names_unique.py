"""a site's funnel names are unique, whatever their case

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 10:00:00

Funnels of one site that share a name (ignoring case) are renamed first, the later ones
getting " (2)", " (3)"..., so the unique index on (site_id, lower(name)) can be made.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_INDEX = "ux_funnels_site_name"
_funnels = sa.table(
    "funnels",
    sa.column("id", sa.Integer()),
    sa.column("site_id", sa.Integer()),
    sa.column("name", sa.String()),
)


def _rename_duplicates() -> None:
    """Give the second and later funnels of a shared name a numbered one (few rows)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_funnels.c.id, _funnels.c.site_id, _funnels.c.name).order_by(_funnels.c.id)
    ).all()
    taken = {(site_id, name.lower()) for _, site_id, name in rows}
    seen: set[tuple[int, str]] = set()
    for funnel_id, site_id, name in rows:
        key = (site_id, name.lower())
        if key not in seen:
            seen.add(key)
            continue
        number = 2
        while (site_id, f"{name[:90]} ({number})".lower()) in taken:
            number += 1
        new_name = f"{name[:90]} ({number})"
        taken.add((site_id, new_name.lower()))
        seen.add((site_id, new_name.lower()))
        connection.execute(
            _funnels.update().where(_funnels.c.id == funnel_id).values(name=new_name)
        )


def upgrade():
    _rename_duplicates()
    op.create_index(_INDEX, "funnels", ["site_id", sa.text("lower(name)")], unique=True)


def downgrade():
    op.drop_index(_INDEX, table_name="funnels")
