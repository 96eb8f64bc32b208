"""visitor sessions carry integer keys of their first 1..10 steps; the journeys report groups
them from one covering index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 07:00:00

"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

KEPT_STEPS = 10
KEYS = [f"j{n}" for n in range(1, KEPT_STEPS + 1)]
BATCH = 10_000


def _key(steps: list[str]) -> int:
    """The key of a step sequence (a copy of sessions.journey_key as of this revision)."""
    digest = hashlib.blake2b("\n".join(steps).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _keys(paths: str) -> dict[str, int]:
    """The j1..j10 values of a session's kept steps ("\\n"-joined)."""
    head = paths.split("\n") if paths else []
    keys = [_key(head[:n]) for n in range(1, min(len(head), KEPT_STEPS) + 1)]
    keys += [keys[-1] if keys else _key([])] * (KEPT_STEPS - len(keys))
    return dict(zip(KEYS, keys, strict=True))


def upgrade():
    for name in KEYS:
        op.add_column("visitor_sessions", sa.Column(name, sa.BigInteger(), nullable=True))
    # Existing sessions get their keys here, in batches by id (no re-derivation needed).
    bind = op.get_bind()
    table = sa.table(
        "visitor_sessions", sa.column("id"), sa.column("paths"), *(sa.column(k) for k in KEYS)
    )
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("session_id"))
        .values({name: sa.bindparam(f"new_{name}") for name in KEYS})
    )
    after = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.paths)
            .where(table.c.id > after)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(
            update,
            [
                {"session_id": i, **{f"new_{k}": v for k, v in _keys(paths).items()}}
                for i, paths in rows
            ],
        )
        after = rows[-1][0]
    op.drop_index("ix_visitor_sessions_site_started", table_name="visitor_sessions")
    op.create_index(
        "ix_visitor_sessions_site_journeys",
        "visitor_sessions",
        ["site_id", "started_at", *KEYS, "converted", "visitor_id", "rules"],
    )


def downgrade():
    op.drop_index("ix_visitor_sessions_site_journeys", table_name="visitor_sessions")
    op.create_index(
        "ix_visitor_sessions_site_started", "visitor_sessions", ["site_id", "started_at"]
    )
    with op.batch_alter_table("visitor_sessions", schema=None) as batch_op:
        for name in KEYS:
            batch_op.drop_column(name)
