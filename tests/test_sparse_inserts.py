"""An INSERT that leaves out its rows' NULL columns (CompiledStatement.sparse_binder) stores
exactly what the statement with every column stores: each row, in order, NULL where None."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, text
from sqlalchemy.dialects import sqlite

from datalook.sql.compiled import CompiledStatement

_metadata = MetaData()
_table = Table(
    "t",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("site", Integer, nullable=False),
    Column("name", String),
    Column("at", DateTime),
    Column("note", String),
    # Defaults on either side: a NULL sent for them must stay NULL, never their default.
    Column("flag", Integer, default=5),
    Column("mark", Integer, server_default=text("7")),
)
_COLUMNS = ["site", "name", "at", "note", "flag", "mark"]
_VARYING = ["name", "at", "note", "flag", "mark"]
AT = datetime(2026, 12, 7, 22, 0, 0, 123456)


def _stored(rows: list[tuple], constants: dict, sparse: bool) -> list[tuple]:
    """The table's rows after inserting `rows` (values of _VARYING) with `constants`."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, site INTEGER NOT NULL, name TEXT,"
        " at TEXT, note TEXT, flag INTEGER DEFAULT 5, mark INTEGER DEFAULT 7)"
    )
    statement = CompiledStatement(insert(_table), sqlite.dialect(), _COLUMNS)
    if sparse:
        chosen, bound = statement.sparse_binder(_VARYING, constants)(rows)
    else:
        chosen, bound = statement, statement.binder(_VARYING, constants)(rows)
    chosen.execute_bound(connection.cursor(), bound)
    return connection.execute("SELECT * FROM t ORDER BY id").fetchall()


@pytest.mark.parametrize(
    ("rows", "constants"),
    [
        pytest.param([("a", AT, None, 1, 2)], {"site": 1}, id="one-row"),
        pytest.param([("a", AT, None, 1, 2), ("b", AT, None, 3, 4)], {"site": 1}, id="note-null"),
        pytest.param(
            [("a", None, None, None, None), (None, None, None, None, None)],
            {"site": 2},
            id="all-null-but-one",
        ),
        pytest.param(
            [("a", AT, "x", None, 2), (None, None, None, 1, None), ("c", AT, None, None, 3)],
            {"site": 3},
            id="nulls-here-and-there",
        ),
        pytest.param(
            [("a", AT, None, None, None)] * 3 + [("a", datetime(2026, 1, 1), "n", 0, 0)],
            {"site": 4},
            id="repeated-times",
        ),
    ],
)
def test_the_sparse_insert_stores_what_the_full_one_stores(rows, constants):
    assert _stored(rows, constants, sparse=True) == _stored(rows, constants, sparse=False)


def test_a_null_constant_is_left_out_only_without_a_default():
    rows = [("a", AT, None, None, None), ("b", AT, None, None, None)]
    stored = _stored(rows, {"site": 1}, sparse=True)
    assert [row[5:] for row in stored] == [(None, None), (None, None)]
    assert stored == _stored(rows, {"site": 1}, sparse=False)


def test_the_statement_names_only_the_columns_that_have_a_value():
    statement = CompiledStatement(insert(_table), sqlite.dialect(), _COLUMNS)
    rows = [("a", AT, None, None, 1), ("b", AT, None, None, 2)]
    chosen, bound = statement.sparse_binder(_VARYING, {"site": 1})(rows)
    # note has no default: left out; flag has one: bound as NULL.
    assert "note" not in chosen.sql and "flag" in chosen.sql
    assert len(bound) == 2 and all(len(row) == 5 for row in bound)
    # The variant is compiled once per set of columns.
    assert statement.sparse_binder(_VARYING, {"site": 9})(rows)[0] is chosen
