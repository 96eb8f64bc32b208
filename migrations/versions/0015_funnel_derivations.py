"""saved funnels' derived rows belong to a derivation: deleting or editing a funnel retires
it in one small write, and its rows are purged afterwards in short batches

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 07:00:00

Each existing funnel gets one current derivation whose id is the funnel's id, so the derived
rows keep their keys: their funnel_id column becomes derivation_id, whose foreign key goes
to funnel_derivations (on SQLite the three tables are copied once to change it), and their
cursors "funnel:<id>" become "funnel_derivation:<id>". The zone of a funnel's days moves to
its derivation. Nothing has to be derived again.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ATTEMPT_COLUMNS = ["depth", *(f"g{k}" for k in range(2, 9)), *(f"v{k}" for k in range(1, 9))]
# Names for the unnamed foreign keys of 0005 when SQLite's tables are reflected and copied.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}
# table: (its indexes before, its indexes after: name -> columns after the key column)
_DERIVED = {
    "funnel_events": (
        {"ix_funnel_events_funnel_visitor": ["visitor_id", "occurred_at"]},
        {"ix_funnel_events_derivation_visitor": ["visitor_id", "occurred_at"]},
    ),
    "funnel_attempts": (
        {
            "ix_funnel_attempts_funnel_range": ["started_at", "prev_ge", "next_gt", *_ATTEMPT_COLUMNS],
            "ix_funnel_attempts_funnel_visitor": ["visitor_id", "started_at"],
        },
        {
            "ix_funnel_attempts_derivation_range": [
                "started_at",
                "prev_ge",
                "next_gt",
                *_ATTEMPT_COLUMNS,
            ],
            "ix_funnel_attempts_derivation_visitor": ["visitor_id", "started_at"],
        },
    ),
    "funnel_excluded": (
        {"ix_funnel_excluded_funnel_bucket": ["bucket"]},
        {"ix_funnel_excluded_derivation_bucket": ["bucket"]},
    ),
}


def _now() -> datetime:
    """Naive UTC now, as the application stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _foreign_key(table: str, column: str) -> str:
    """The name of the foreign key on `column`: as the database has it (PostgreSQL named
    0005's itself), or as _SQLITE_NAMES names an unnamed one on SQLite."""
    for found in sa.inspect(op.get_bind()).get_foreign_keys(table):
        if found["constrained_columns"] == [column] and found.get("name"):
            return found["name"]
    return _SQLITE_NAMES["fk"] % {"table_name": table, "column_0_name": column}


def _rekey(table: str, old: str, new: str, target: str, before: dict, after: dict) -> None:
    """Rename a derived table's key column `old` to `new`, its foreign key now to `target`,
    with its indexes renamed alike (on SQLite: the table is copied once)."""
    for name in before:
        op.drop_index(name, table_name=table)
    fk = _foreign_key(table, old)
    with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES) as batch_op:
        batch_op.drop_constraint(fk, type_="foreignkey")
        # On the column's old name, then renamed: in this order on both databases (SQLite's
        # copy would drop a key made on the new name).
        batch_op.create_foreign_key(
            f"fk_{table}_{new}", target, [old], ["id"], ondelete="CASCADE"
        )
        batch_op.alter_column(
            old, new_column_name=new, existing_type=sa.Integer(), existing_nullable=False
        )
    for name, columns in after.items():
        op.create_index(name, table, [new, *columns])


def upgrade():
    op.create_table(
        "funnel_derivations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("funnel_id", sa.Integer(), nullable=False),
        sa.Column("days_tz", sa.String(length=64), nullable=True),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,  # a purged derivation's id is never given again
    )
    op.create_index("ix_funnel_derivations_site_id", "funnel_derivations", ["site_id"])
    current = sa.text("retired_at IS NULL")
    op.create_index(
        "ux_funnel_derivations_current",
        "funnel_derivations",
        ["funnel_id"],
        unique=True,
        sqlite_where=current,
        postgresql_where=current,
    )
    # Every funnel's current derivation takes the funnel's id: the derived rows keep theirs.
    op.execute(
        sa.text(
            "INSERT INTO funnel_derivations (id, site_id, funnel_id, days_tz, created_at)"
            " SELECT id, site_id, id, days_tz, :now FROM funnels"
        ).bindparams(now=_now())
    )
    if _postgresql():  # the sequence goes on after the ids given here
        op.execute(
            "SELECT setval(pg_get_serial_sequence('funnel_derivations', 'id'),"
            " COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM funnel_derivations"
        )
    for table, (before, after) in _DERIVED.items():
        _rekey(table, "funnel_id", "derivation_id", "funnel_derivations", before, after)
    _rename_cursors("funnel:", "funnel_derivation:", "funnels")
    # A funnel never caught up had no cursor yet: every derivation has one from its start.
    op.execute(
        sa.text(
            "INSERT INTO derived_cursors (name, last_event_id, updated_at)"
            " SELECT 'funnel_derivation:' || CAST(id AS VARCHAR(20)), 0, :now"
            " FROM funnel_derivations WHERE 'funnel_derivation:' || CAST(id AS VARCHAR(20))"
            " NOT IN (SELECT name FROM derived_cursors)"
        ).bindparams(now=_now())
    )
    # In place (SQLite 3.35 or later): copying funnels would delete it first, which on
    # SQLite cascades to any table that still refers to it.
    with op.batch_alter_table("funnels", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("days_tz")


def _rename_cursors(old: str, new: str, owners: str, where: str = "") -> None:
    """Rename the cursors "<old><id>" to "<new><id>" where `owners` (a table) has that id
    (and `where` holds); drop the others (they would stand in a later id's way)."""
    bind = op.get_bind()
    ids = {row[0] for row in bind.execute(sa.text(f"SELECT id FROM {owners} {where}"))}
    names = [
        row[0]
        for row in bind.execute(
            sa.text("SELECT name FROM derived_cursors WHERE name LIKE :prefix"),
            {"prefix": old + "%"},
        )
    ]
    for name in names:
        suffix = name[len(old) :]
        if suffix.isdigit() and int(suffix) in ids:
            bind.execute(
                sa.text("UPDATE derived_cursors SET name = :new WHERE name = :old"),
                {"new": new + suffix, "old": name},
            )
        else:
            bind.execute(sa.text("DELETE FROM derived_cursors WHERE name = :old"), {"old": name})


def downgrade():
    with op.batch_alter_table("funnels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("days_tz", sa.String(length=64), nullable=True))
    # Only a current derivation whose id is its funnel's keeps its rows (and its cursor);
    # every other funnel is derived again from its first event.
    kept = "retired_at IS NULL AND id = funnel_id"
    op.execute(
        "UPDATE funnels SET days_tz = (SELECT d.days_tz FROM funnel_derivations d"
        f" WHERE d.funnel_id = funnels.id AND d.{kept})"
    )
    for table in _DERIVED:
        op.execute(
            f"DELETE FROM {table} WHERE derivation_id NOT IN"
            f" (SELECT id FROM funnel_derivations WHERE {kept})"
        )
    _rename_cursors("funnel_derivation:", "funnel:", "funnel_derivations", f"WHERE {kept}")
    for table, (before, after) in _DERIVED.items():
        _rekey(table, "derivation_id", "funnel_id", "funnels", after, before)
    op.drop_index("ux_funnel_derivations_current", table_name="funnel_derivations")
    op.drop_index("ix_funnel_derivations_site_id", table_name="funnel_derivations")
    op.drop_table("funnel_derivations")
