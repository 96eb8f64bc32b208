"""store.read.connect: one DuckDB database per process, a connection of it per report.

The reports of concurrent threads register relations and make TEMP tables under the same
names without seeing each other's; what a closed connection made is gone; a forked child
makes its own database instead of using its parent's.
"""

from __future__ import annotations

import os
import threading

import pyarrow as pa

from datalook.analytics.store.read import connect


def _report(value: int, seen: dict[int, list]) -> None:
    """What one report does: register a relation and make a TEMP table, then read both."""
    con = connect()
    try:
        con.register("rows", con.from_arrow(pa.table({"v": [value] * 3})))
        con.execute("CREATE TEMP TABLE summed AS SELECT sum(v) AS s FROM rows")
        seen[value] = con.execute("SELECT (SELECT s FROM summed), count(*) FROM rows").fetchall()
    finally:
        con.close()


def test_concurrent_reports_see_only_their_own_objects():
    seen: dict[int, list] = {}
    threads = [threading.Thread(target=_report, args=(n, seen)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {n: [(3 * n, 3)] for n in range(1, 9)}


def test_what_a_closed_connection_made_is_gone():
    _report(5, {})
    con = connect()
    try:
        names = con.execute(
            "SELECT table_name FROM duckdb_tables() UNION ALL"
            " SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    finally:
        con.close()
    assert names == []


def test_a_forked_child_makes_its_own_database():
    _report(1, {})  # the parent's database exists before the fork
    pid = os.fork()
    if pid == 0:  # the child: a report of its own, then out without pytest's teardown
        code = 1
        try:
            seen: dict[int, list] = {}
            _report(7, seen)
            code = 0 if seen == {7: [(21, 3)]} else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
