"""The links waiting to be applied are read through their partial index: every report read
asks for them, and a scan of all links cost 110–150 ms at 750k links."""

from __future__ import annotations

from sqlalchemy import event

from datalook.analytics import identity
from datalook.extensions import db


def test_pending_links_are_read_through_their_partial_index(make_app):
    app = make_app()
    seen: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        """Keep the SELECTs of the pending links."""
        if statement.lstrip().upper().startswith("SELECT") and "visitor_links" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", grab)
        try:
            assert identity.apply_pending(db.session) == 0
            assert identity.pending_links(db.session) == 0
        finally:
            event.remove(db.engine, "before_cursor_execute", grab)
        assert len(seen) == 2
        for statement, parameters in seen:
            plan = db.session.connection().exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters
            )
            details = [row[-1] for row in plan]
            assert any("ix_visitor_links_pending" in d for d in details), details
