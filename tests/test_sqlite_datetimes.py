"""A compiled statement's SQLite DATETIME text is exactly SQLAlchemy's, however it is made."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert
from sqlalchemy.dialects import sqlite

from datalook.sql.compiled import CompiledStatement

_table = Table("t", MetaData(), Column("id", Integer), Column("at", DateTime()))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 7, 19, 22, 46, 123456),
        datetime(2026, 12, 7, 19, 22, 46),  # no microseconds: still six zeros
        datetime(2026, 1, 2, 3, 4, 5, 6),
        datetime(1, 1, 1),  # a year below 1000: four digits
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(2026, 12, 7, 19, 22, 46, 500, tzinfo=UTC),  # aware: SQLAlchemy's way
        datetime(2026, 12, 7, 19, 22, 46, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        date(2026, 12, 7),  # a date: midnight
    ],
)
def test_datetimes_bind_as_sqlalchemy_binds_them(value):
    dialect = sqlite.dialect()
    statement = CompiledStatement(insert(_table), dialect, ["id", "at"])
    expected = DateTime().dialect_impl(dialect).bind_processor(dialect)(value)
    assert statement.params({"id": 1, "at": value}) == (1, expected)
    (row,) = statement.binder(["at"], {"id": 1})([(value,)])
    assert row == (1, expected)


def test_anything_else_is_refused_as_sqlalchemy_refuses_it():
    statement = CompiledStatement(insert(_table), sqlite.dialect(), ["id", "at"])
    with pytest.raises(TypeError):
        statement.params({"id": 1, "at": "2026-12-07"})
