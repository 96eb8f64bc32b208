"""Database engine tuning that must hold on every connection, and portable upserts."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from .extensions import db


def _sqlite_pragmas(synchronous: str, busy_timeout_ms: int):
    """Return a connect hook applying the SQLite settings for many worker processes."""

    def apply(dbapi_connection, _record) -> None:
        """WAL (readers never wait for the writer), a busy timeout, foreign keys."""
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Wait this long for a competing writer; past it, the ingestion API answers 503.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # NORMAL in WAL mode: a commit survives any crash or kill of the process; only an
        # operating-system crash or power loss can lose the last commits. FULL closes that
        # gap at the price of an fsync per commit (SQLITE_SYNCHRONOUS=FULL).
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return apply


def init_app(app: Flask) -> None:
    """Attach per-connection settings to the app's engine."""
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite":
            hook = _sqlite_pragmas(
                app.config["SQLITE_SYNCHRONOUS"], app.config["SQLITE_BUSY_TIMEOUT_MS"]
            )
            event.listen(engine, "connect", hook)


def dialect_insert(table, dialect_name: str):
    """Return the dialect's INSERT construct, which knows ON CONFLICT."""
    return pg_insert(table) if dialect_name == "postgresql" else sqlite_insert(table)


def insert_ignoring_conflicts(table, index_elements: list[str], dialect_name: str):
    """INSERT … ON CONFLICT (index_elements) DO NOTHING, on SQLite and PostgreSQL alike."""
    return dialect_insert(table, dialect_name).on_conflict_do_nothing(index_elements=index_elements)


def upsert(table, values: dict, index_elements: list[str], set_: dict, dialect_name: str):
    """INSERT … ON CONFLICT (index_elements) DO UPDATE SET …, on both databases."""
    return (
        dialect_insert(table, dialect_name)
        .values(**values)
        .on_conflict_do_update(index_elements=index_elements, set_=set_)
    )
