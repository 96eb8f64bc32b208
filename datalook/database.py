"""Database engine tuning that must hold on every connection."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from .extensions import db


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Make SQLite safe for several worker processes: WAL, a busy timeout, foreign keys."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # Wait for a competing writer instead of failing at once; long waits become a 503.
    cursor.execute("PRAGMA busy_timeout=5000")
    # FULL: a commit is on disk before we answer 204, even if the machine loses power.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def init_app(app: Flask) -> None:
    """Attach per-connection settings to the app's engine."""
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)


def _dialect_insert(table):
    """Return the dialect's INSERT construct, which knows ON CONFLICT."""
    if db.engine.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


def insert_ignoring_conflicts(table, index_elements: list[str]):
    """INSERT … ON CONFLICT (index_elements) DO NOTHING, on SQLite and PostgreSQL alike."""
    return _dialect_insert(table).on_conflict_do_nothing(index_elements=index_elements)


def upsert(table, values: dict, index_elements: list[str], set_: dict):
    """INSERT … ON CONFLICT (index_elements) DO UPDATE SET …, on both databases."""
    return (
        _dialect_insert(table)
        .values(**values)
        .on_conflict_do_update(index_elements=index_elements, set_=set_)
    )
