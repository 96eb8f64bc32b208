"""Derived tables (sessions) are computed outside any write transaction and stored briefly:
event writers go on meanwhile, and a derivation overtaken by another one or by an erasure
is computed again instead of storing stale rows."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from sqlalchemy import select, update

from datalook import erasure
from datalook.analytics import cursors, sessions
from datalook.analytics.funnels.models import DerivedCursor, VisitorSession
from datalook.extensions import db
from datalook.models import Site
from tests.funnel_data import E, store

T0 = datetime(2026, 3, 10, 9, 0)


def _events() -> list[E]:
    """Two visitors, two sessions each."""
    return [
        E(visitor, T0 + timedelta(minutes=minutes), path=path)
        for visitor in ("u:1", "u:2")
        for minutes, path in ((0, "/"), (5, "/pricing"), (120, "/"), (121, "/docs"))
    ]


def _visitors(app) -> list[str]:
    """The visitors of the stored sessions, one entry per session."""
    with app.app_context():
        return sorted(db.session.scalars(select(VisitorSession.visitor_id)))


def test_an_event_writer_is_not_held_back_while_sessions_are_derived(app, owner):
    store(app, owner, _events())
    database = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    writes = []

    def derive(session, after_id, up_to_id):
        # Another connection writes now, with a short busy timeout: it fails with
        # "database is locked" if the derivation holds the write lock while it computes.
        other = sqlite3.connect(database, timeout=0.2)
        try:
            other.execute("UPDATE sites SET domain = domain WHERE id = ?", (owner,))
            other.commit()
            writes.append("written")
        finally:
            other.close()
        return sessions.derive_changes(session, after_id, up_to_id)

    with app.app_context():
        passed = cursors.derive_in_two_phases(
            db.session, sessions.CURSOR, derive, sessions.store_changes
        )
    assert writes == ["written"]
    assert passed == len(_events())
    assert _visitors(app) == ["u:1", "u:1", "u:2", "u:2"]


def test_a_derivation_overtaken_by_another_catch_up_is_computed_again(app, owner):
    store(app, owner, _events())
    calls = []

    def derive(session, after_id, up_to_id):
        calls.append(after_id)
        result = sessions.derive_changes(session, after_id, up_to_id)
        if len(calls) == 1:
            with app.app_context():  # another process catches up first
                sessions.catch_up(db.session)
        return result

    with app.app_context():
        cursors.derive_in_two_phases(db.session, sessions.CURSOR, derive, sessions.store_changes)
    # The first result was dropped; the second pass found nothing after the moved cursor.
    assert len(calls) == 1 or calls[1] > calls[0]
    assert _visitors(app) == ["u:1", "u:1", "u:2", "u:2"]  # stored once, not twice


def test_an_erasure_during_a_derivation_leaves_no_session_of_the_erased_visitor(app, owner):
    store(app, owner, _events())
    calls = []

    def derive(session, after_id, up_to_id):
        calls.append(after_id)
        result = sessions.derive_changes(session, after_id, up_to_id)
        if len(calls) == 1:
            with app.app_context():  # the owner erases visitor 1 meanwhile
                site = db.session.get(Site, owner)
                assert erasure.erase_visitor(site, "1", "owner@example.com") == 4
        return result

    with app.app_context():
        cursors.derive_in_two_phases(db.session, sessions.CURSOR, derive, sessions.store_changes)
    assert len(calls) == 2  # computed again from the events that remain
    assert _visitors(app) == ["u:2", "u:2"]


def test_a_cursor_moved_by_hand_is_not_overwritten(app, owner):
    store(app, owner, _events())
    with app.app_context():
        cursors.ensure(db.session, sessions.CURSOR)
        db.session.execute(
            update(DerivedCursor)
            .where(DerivedCursor.name == sessions.CURSOR)
            .values(last_event_id=10**9)
        )
        db.session.commit()
        assert sessions.catch_up(db.session) == 0
        assert (
            db.session.scalar(
                select(DerivedCursor.last_event_id).where(DerivedCursor.name == sessions.CURSOR)
            )
            == 10**9
        )
