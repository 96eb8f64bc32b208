"""Bulk writes that skip SQLAlchemy's per-row work: COPY on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def copy_rows(connection: Any, table: str, columns: Sequence[str], rows: Iterable) -> None:
    """PostgreSQL: COPY rows (tuples in `columns` order) into `table` on a SQLAlchemy
    connection, in its transaction (far faster than INSERT)."""
    driver = connection.connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
