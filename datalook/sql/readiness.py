"""Whether the database is set up (migrated), checked without ever creating one.

The command line runs this before any command that reads or writes DataLook's tables: an
SQLite URL whose file does not exist would otherwise be created empty by the first
connection, and the command would fail with a long traceback ("no such table: sites").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

#: A table every migrated database has.
PROBE_TABLE = "sites"


def not_ready(engine: Engine) -> str | None:
    """None when the database has DataLook's tables, else why not (one short clause)."""
    url = make_url(engine.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_not_ready(url.database)
    try:
        with engine.connect() as connection:
            present = inspect(connection).has_table(PROBE_TABLE)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines() or ["no answer"]
        return f"cannot reach the database ({reason[0][:160]})"
    return None if present else "the database has no DataLook tables yet"


def _sqlite_not_ready(database: str | None) -> str | None:
    """The SQLite check: the file exists and has the tables, read without creating it."""
    if not database or database == ":memory:":
        return None
    path = Path(database)
    if not path.is_file():
        return f"there is no database file {database}"
    try:
        # Read-only: opening this way never creates or changes the file.
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (PROBE_TABLE,)
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"the database file {database} cannot be read ({exc})"
    return None if found else f"the database file {database} has no DataLook tables yet"
