"""A saved funnel's lifecycle on a large site: deleting or editing it is one small write
(the funnel vanishes, or reports its new definition, at once), the rows it leaves are
purged afterwards in short batches; its derivation is computed outside any write
transaction and redone when an erasure or an edit overtakes it; the fold process derives
within a budget and keeps folding the summaries; and through all of it the saved report
stays the unsaved one. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from urllib.parse import urlencode

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import event, func, select, text

from datalook import erasure
from datalook.analytics import catch_up as derive
from datalook.analytics import worker
from datalook.analytics.funnels import derivation as funnel_derivations
from datalook.analytics.funnels import read_catch_up
from datalook.analytics.funnels import repository as funnel_repository
from datalook.analytics.funnels.models import (
    DerivedCursor,
    Funnel,
    FunnelAttempt,
    FunnelDerivation,
    FunnelEvent,
    FunnelExcluded,
)
from datalook.analytics.rollups import fold as summaries
from datalook.extensions import db
from datalook.models import Event, Site
from tests.conftest import add_site, csrf_from, sign_up
from tests.funnel_data import E, set_timezone, store
from tests.test_funnels_api import PAID, PRICING, RANGE, STEPS, at, funnel_url, save_funnel
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

DERIVED = (FunnelEvent, FunnelAttempt, FunnelExcluded)
KINDS = [
    ("pageview", "/", None, None),
    ("pageview", "/pricing", None, None),
    ("success", "/ok", "paid", 1_000_000),
    ("click", "/", None, None),
]
VISITORS = ["u:1", "u:2", "u:3", "u:4", "u:5", "a:anon"]
RANGES = [
    RANGE,
    {"from": "2026-03-09", "to": "2026-03-11"},
    {"from": "2026-03-11", "to": "2026-03-11"},
]
# How each edit changes the funnel's definition (the builder's fields).
EDITS = {
    "steps": {"event_name": ["pageview", "pageview"], "page_path": ["/pricing", "/"]},
    "window": {"window": "90m"},
    "mode": {"mode": "strict"},
}


def random_events(seed: int, count: int) -> list[E]:
    """Events of a few visitors around the range, some of them late (table-driven data)."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        kind, path, name, value = rng.choice(KINDS)
        events.append(
            E(rng.choice(VISITORS), at(rng.randint(-300, 26 * 60)), kind, path, name, value)
        )
    return events


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request):
    """(app, logged-in client, site id reporting in New York time), on each database."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    set_timezone(app, site_id, "America/New_York")
    return app, client, site_id


def saved_url(site_id: int, funnel_id: int, days: dict = RANGE) -> str:
    """The saved funnel's JSON over a range."""
    return f"/sites/{site_id}/funnels/{funnel_id}.json?{urlencode(days)}"


def definition_of(app, funnel_id: int) -> dict:
    """The funnel's stored definition."""
    with app.app_context():
        return json.loads(db.session.get(Funnel, funnel_id).definition)


def unsaved_url(site_id: int, definition: dict, days: dict = RANGE) -> str:
    """funnel.json for a stored definition."""
    return funnel_url(
        site_id, definition["steps"], definition["window"], definition["mode"], **days
    )


def assert_saved_equals_unsaved(app, client, site_id: int, funnel_id: int) -> None:
    """Over several ranges, the saved report is the unsaved one of the same definition."""
    definition = definition_of(app, funnel_id)
    for days in RANGES:
        saved = client.get(saved_url(site_id, funnel_id, days))
        unsaved = client.get(unsaved_url(site_id, definition, days))
        assert saved.status_code == unsaved.status_code == 200
        assert saved.get_json() == unsaved.get_json(), days


def edit_funnel(client, site_id: int, funnel_id: int, change: dict):
    """Post the builder on a saved funnel with `change` over its current fields."""
    page = client.get(f"/sites/{site_id}/funnels/{funnel_id}/edit").get_data(as_text=True)
    form = {
        "csrf_token": csrf_from(page),
        "name": "Edited",
        "window": "24h",
        "mode": "ordered",
        "event_name": [s["event_name"] for s in STEPS],
        "page_path": [s.get("page_path") or "" for s in STEPS],
        "rule_name": [s.get("name") or "" for s in STEPS],
        "property_key": ["" for _ in STEPS],
        "property_value": ["" for _ in STEPS],
        **change,
    }
    steps = len(form["event_name"])
    for field in ("page_path", "rule_name", "property_key", "property_value"):
        form[field] = (form[field] + [""] * steps)[:steps]
    return client.post(f"/sites/{site_id}/funnels/{funnel_id}/edit", data=form)


def delete_funnel(client, site_id: int, funnel_id: int):
    """Post the delete form like a browser."""
    # The sites page carries the session's token and reads no derived row (the funnels
    # list reads each funnel's conversion).
    page = client.get("/sites/").get_data(as_text=True)
    return client.post(
        f"/sites/{site_id}/funnels/{funnel_id}/delete", data={"csrf_token": csrf_from(page)}
    )


def derivation_of(app, funnel_id: int) -> int:
    """The funnel's current derivation."""
    with app.app_context():
        return funnel_derivations.current(db.session, funnel_id).id


def rows_of(app, derivation_id: int) -> list[int]:
    """The derivation's rows in each derived table."""
    with app.app_context():
        return [
            db.session.scalar(
                select(func.count()).select_from(t).where(t.derivation_id == derivation_id)
            )
            for t in DERIVED
        ]


def cursor_of(app, derivation_id: int) -> int | None:
    """The derivation's cursor position (None when it is gone)."""
    with app.app_context():
        name = funnel_derivations.cursor_name(derivation_id)
        return db.session.scalar(
            select(DerivedCursor.last_event_id).where(DerivedCursor.name == name)
        )


def derivation_exists(app, derivation_id: int) -> bool:
    """Whether the derivation row is still there."""
    with app.app_context():
        return db.session.get(FunnelDerivation, derivation_id) is not None


class Writes:
    """The statements and commits of the app's engine while it is listened to."""

    def __init__(self, app) -> None:
        self.app, self.statements, self.commits = app, [], 0

    def __enter__(self) -> Writes:
        with self.app.app_context():
            self.engine = db.engine
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)

    def _statement(self, _conn, _cursor, statement, _params, _context, _many) -> None:
        self.statements.append(statement)

    def _commit(self, _conn) -> None:
        self.commits += 1

    def written_tables(self) -> set[str]:
        """The tables that INSERT, UPDATE or DELETE statements wrote."""
        found = set()
        for statement in self.statements:
            match = re.match(r"\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", statement)
            if match:
                found.add(match.group(1))
        return found

    def touched(self, table: str) -> bool:
        """Whether any statement named the table."""
        return any(re.search(rf"\b{table}\b", s) for s in self.statements)


# --- 1. delete and edit: one small write, effective at once ---------------------------------


@pytest.mark.parametrize("action", ["delete", *(f"edit {what}" for what in EDITS)])
def test_delete_and_edit_are_one_small_write_effective_at_once(site, action):
    app, client, site_id = site
    store(app, site_id, random_events(1, 150))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    assert client.get(saved_url(site_id, funnel_id)).status_code == 200  # derived now
    old = derivation_of(app, funnel_id)
    before = rows_of(app, old)
    assert before[0] > 0 and before[1] > 0

    with Writes(app) as writes:
        if action == "delete":
            answer = delete_funnel(client, site_id, funnel_id)
        else:
            answer = edit_funnel(client, site_id, funnel_id, EDITS[action.split()[1]])
    assert answer.status_code == 302
    # One transaction of a few rows: the funnel, its derivations, their cursors, and the
    # audit entry that records the change.
    written = writes.written_tables()
    assert written <= {"funnels", "funnel_derivations", "derived_cursors", "audit_log"}
    assert writes.commits == 1
    assert not any(writes.touched(t.__tablename__) for t in DERIVED)
    assert rows_of(app, old) == before  # left for the purge

    if action == "delete":
        for url in (
            saved_url(site_id, funnel_id),
            f"/sites/{site_id}/funnels/{funnel_id}",
            f"/sites/{site_id}/funnels/{funnel_id}/edit",
        ):
            assert client.get(url).status_code == 404, url
        listing = client.get(f"/sites/{site_id}/funnels/").get_data(as_text=True)
        assert "Checkout" not in listing
    else:
        assert derivation_of(app, funnel_id) != old
        assert_saved_equals_unsaved(app, client, site_id, funnel_id)


# --- 2. the purge: short batches until nothing is left ---------------------------------------


@pytest.mark.parametrize("action", ["delete", "edit steps"])
def test_purge_batches_remove_every_row_and_the_cursor(site, action, monkeypatch):
    app, client, site_id = site
    monkeypatch.setattr(funnel_derivations, "PURGE_ROWS", 7)
    store(app, site_id, random_events(2, 200))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    other = save_funnel(client, site_id, "Other", [PRICING, PAID])
    for fid in (funnel_id, other):
        assert client.get(saved_url(site_id, fid)).status_code == 200
    old, kept = derivation_of(app, funnel_id), derivation_of(app, other)
    kept_rows = rows_of(app, kept)
    total = sum(rows_of(app, old))
    if action == "delete":
        delete_funnel(client, site_id, funnel_id)
    else:
        edit_funnel(client, site_id, funnel_id, EDITS["steps"])
        assert client.get(saved_url(site_id, funnel_id)).status_code == 200
    new = None if action == "delete" else derivation_of(app, funnel_id)
    new_rows = None if new is None else rows_of(app, new)

    calls = []
    with app.app_context():
        while derivation_exists(app, old):
            calls.append(funnel_derivations.purge_retired(db.session, seconds=0))
            assert len(calls) <= total  # every call makes progress
    # One transaction per call, at most PURGE_ROWS rows in each.
    assert all(n <= 7 for n in calls) and sum(calls) == total
    assert len(calls) >= total // 7
    assert rows_of(app, old) == [0, 0, 0] and cursor_of(app, old) is None
    assert rows_of(app, kept) == kept_rows  # the other funnel's rows are untouched
    if new is not None:
        assert rows_of(app, new) == new_rows
        assert_saved_equals_unsaved(app, client, site_id, funnel_id)
    with app.app_context():
        assert funnel_derivations.purge_retired(db.session) == 0  # nothing left


def test_funnels_catch_up_purges_what_deleted_funnels_left(site):
    app, client, site_id = site
    store(app, site_id, random_events(3, 100))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    client.get(saved_url(site_id, funnel_id))
    old = derivation_of(app, funnel_id)
    delete_funnel(client, site_id, funnel_id)
    result = app.test_cli_runner().invoke(args=["funnels", "catch-up"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"{derive.PURGED}: [1-9]", result.output)
    assert rows_of(app, old) == [0, 0, 0] and cursor_of(app, old) is None
    assert not derivation_exists(app, old)


def test_an_erasure_also_clears_a_retired_derivation(site):
    app, client, site_id = site
    store(app, site_id, [E("u:9", at(0)), E("u:9", at(5), path="/pricing"), E("u:8", at(1))])
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    client.get(saved_url(site_id, funnel_id))
    old = derivation_of(app, funnel_id)
    edit_funnel(client, site_id, funnel_id, EDITS["window"])  # old is retired, not purged
    with app.app_context():
        erasure.erase_visitor(db.session.get(Site, site_id), "9", "owner@example.com")
        left = db.session.scalars(
            select(FunnelEvent.visitor_id).where(FunnelEvent.derivation_id == old)
        ).all()
    assert left == ["u:8"]
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)


# --- 3. derivation in two phases --------------------------------------------------------------


def test_an_event_writer_is_not_held_back_while_a_funnel_derives(app, client):
    sign_up(client)
    site_id = add_site(client)
    store(app, site_id, random_events(4, 120))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    database = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    writes = []
    derive_changes = funnel_derivations.derive_changes

    def derive_writing(*args):
        # Another connection writes now, with a short busy timeout: it fails with
        # "database is locked" if the derivation holds the write lock while it computes.
        other = sqlite3.connect(database, timeout=0.2)
        try:
            other.execute("UPDATE sites SET domain = domain WHERE id = ?", (site_id,))
            other.commit()
            writes.append("written")
        finally:
            other.close()
        return derive_changes(*args)

    funnel_derivations.derive_changes = derive_writing
    try:
        with app.app_context():
            passed = funnel_derivations.catch_up_funnel(db.session, funnel_id)
    finally:
        funnel_derivations.derive_changes = derive_changes
    assert writes == ["written"] and passed == 120
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)


def _overtake_erasure(app, client, site_id: int, funnel_id: int) -> None:
    """The owner erases visitor 1."""
    with app.app_context():
        erasure.erase_visitor(db.session.get(Site, site_id), "1", "owner@example.com")


def _overtake_catch_up(app, client, site_id: int, funnel_id: int) -> None:
    """Another process catches the funnel up first."""
    with app.app_context():
        funnel_derivations.catch_up_funnel(db.session, funnel_id)


def _overtake_zone(app, client, site_id: int, funnel_id: int) -> None:
    """The site's zone changes and another process's report follows it."""
    set_timezone(app, site_id, "Asia/Kathmandu")
    _overtake_catch_up(app, client, site_id, funnel_id)


def _overtake_edit(app, client, site_id: int, funnel_id: int) -> None:
    """The owner edits the funnel's window."""
    assert edit_funnel(client, site_id, funnel_id, EDITS["window"]).status_code == 302


OVERTAKERS = {
    "an erasure": (_overtake_erasure, "redone"),
    "another catch-up": (_overtake_catch_up, "dropped"),
    "a zone change": (_overtake_zone, "superseded"),
    "an edit": (_overtake_edit, "superseded"),
}


@pytest.mark.parametrize("overtaker", list(OVERTAKERS))
def test_a_derivation_overtaken_stores_nothing_stale(site, overtaker, monkeypatch):
    app, client, site_id = site
    overtake, outcome = OVERTAKERS[overtaker]
    store(app, site_id, random_events(5, 150))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    first = derivation_of(app, funnel_id)
    calls, overtaking = [], []
    derive_changes = funnel_derivations.derive_changes

    def derive_once_overtaken(tx, derivation_id, *args):
        if overtaking:  # the other process's own derivation
            return derive_changes(tx, derivation_id, *args)
        calls.append(derivation_id)
        result = derive_changes(tx, derivation_id, *args)
        if len(calls) == 1:
            overtaking.append(True)
            overtake(app, client, site_id, funnel_id)
            overtaking.clear()
        return result

    monkeypatch.setattr(funnel_derivations, "derive_changes", derive_once_overtaken)
    with app.app_context():
        funnel_derivations.catch_up_derivation(db.session, first, "America/New_York")
    monkeypatch.undo()
    if outcome == "redone":  # computed again from the events that remain
        assert calls == [first, first]
        with app.app_context():
            assert not db.session.scalar(
                select(func.count()).where(FunnelEvent.visitor_id == "u:1")
            )
    elif outcome == "dropped":  # the other catch-up stored it; nothing more to do
        assert calls == [first]
    else:  # the derivation was retired: nothing stored into it, the new one is current
        assert calls == [first, first]
        assert rows_of(app, first) == [0, 0, 0]
        assert derivation_of(app, funnel_id) != first
    with app.app_context():  # every matched event stored once
        ids = db.session.scalars(
            select(FunnelEvent.event_id).where(
                FunnelEvent.derivation_id == derivation_of(app, funnel_id)
            )
        ).all()
    assert len(ids) == len(set(ids))
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)


@pytest.mark.parametrize("batch", [3, 7, 50_000], ids=["batches of 3", "of 7", "one batch"])
def test_two_phase_batches_give_the_unsaved_report_as_events_arrive_late(site, batch, monkeypatch):
    app, client, site_id = site
    monkeypatch.setattr(funnel_derivations, "DERIVE_BATCH", batch)
    # Batches of 3 events take a report longer than its default budget on a busy machine:
    # this is about what they derive, so the report may take its time.
    monkeypatch.setitem(app.config, "REPORT_CATCHUP_BUDGET_MS", 60_000)
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS, window="90m")
    for seed in range(4):
        store(app, site_id, random_events(10 + seed, 40))
        assert_saved_equals_unsaved(app, client, site_id, funnel_id)


def test_concurrent_catch_ups_an_edit_and_the_purge_leave_the_unsaved_report(site, monkeypatch):
    import threading

    from datalook.analytics.funnels.definition import parse_definition

    app, client, site_id = site
    monkeypatch.setattr(funnel_derivations, "DERIVE_BATCH", 7)  # many short stores that interleave
    monkeypatch.setattr(funnel_derivations, "PURGE_ROWS", 5)
    store(app, site_id, random_events(15, 200))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    failures = []

    def catching_up():
        """A process's catch-ups, as reports and the fold process run them."""
        with app.app_context():
            for _ in range(3):
                funnel_derivations.catch_up_funnel(db.session, funnel_id)

    def editing():
        """The owner changes the window, then the steps."""
        with app.app_context():
            for steps, window in ((STEPS, "6h"), ([PRICING, PAID], "6h")):
                funnel = db.session.get(Funnel, funnel_id)
                definition = parse_definition(steps, window, "ordered")
                funnel_repository.save(db.session, site_id, "Checkout", definition, funnel)

    def purging():
        """The fold process's purge."""
        with app.app_context():
            for _ in range(20):
                funnel_derivations.purge_retired(db.session, seconds=0)

    def run(work):
        try:
            work()
        except Exception as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=(work,))
        for work in (catching_up, catching_up, editing, purging)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with app.app_context():
        derive.catch_up_all(db.session)
        assert db.session.scalar(select(func.count()).select_from(FunnelDerivation)) == 1
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)


# --- 4. the fold process's budget ---------------------------------------------------------------


def _events_between(app, after: int, up_to: int) -> int:
    """How many events have ids in (after, up_to]."""
    with app.app_context():
        return db.session.scalar(select(func.count()).where(Event.id > after, Event.id <= up_to))


def test_a_bounded_tick_leaves_the_rest_for_the_next_and_summaries_still_fold(site, monkeypatch):
    app, client, site_id = site
    monkeypatch.setattr(funnel_derivations, "DERIVE_BATCH", 10)
    monkeypatch.setattr(funnel_derivations, "PURGE_ROWS", 5)
    monkeypatch.setattr(worker, "TICK_SECONDS", 0)  # one batch of each per tick
    monkeypatch.setattr(read_catch_up, "REPORT_CATCH_UP_LIMIT", 20)
    store(app, site_id, random_events(6, 60))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    client.get(saved_url(site_id, funnel_id))  # derived, then deleted: rows to purge
    old = derivation_of(app, funnel_id)
    old_rows = sum(rows_of(app, old))
    delete_funnel(client, site_id, funnel_id)
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    derivation = derivation_of(app, funnel_id)
    store(app, site_id, random_events(7, 60))
    with app.app_context():
        newest = db.session.scalar(select(func.max(Event.id)))
        engine = db.engine
    folder = worker.folder_for(app)

    positions, purged = [0], []
    while positions[-1] < newest or derivation_exists(app, old):
        sooner = folder._tick()  # one tick of `flask analytics fold`
        # The summaries fold everything at every tick, however much derivation is left.
        assert summaries.pending(engine) == 0
        positions.append(cursor_of(app, derivation))
        purged.append(old_rows - sum(rows_of(app, old)))
        # The next tick comes sooner while rows are left to purge or a report would not
        # catch the funnel up itself.
        far = _events_between(app, positions[-1], newest) > 20
        assert sooner == (far or derivation_exists(app, old))
        assert len(positions) < 100
    # One batch of 10 events per tick: the first derivation takes ticks, each comes soon.
    steps = [_events_between(app, a, b) for a, b in zip(positions, positions[1:], strict=False)]
    assert all(0 < n <= 10 for n in steps if n) and sum(steps) == 120
    assert len(steps) >= 12
    assert purged[0] <= 5 and purged[-1] == old_rows and rows_of(app, old) == [0, 0, 0]
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)


def test_the_funnels_most_caught_up_derive_first_and_each_gets_a_batch(site, monkeypatch):
    app, client, site_id = site
    monkeypatch.setattr(funnel_derivations, "DERIVE_BATCH", 5)
    store(app, site_id, random_events(8, 40))
    behind = save_funnel(client, site_id, "Behind", STEPS)
    current = save_funnel(client, site_id, "Current", [PRICING, PAID])
    with app.app_context():  # caught up (a report's own catch-up may run out of its budget)
        funnel_derivations.catch_up_funnel(db.session, current)
    store(app, site_id, random_events(9, 3))
    with app.app_context():
        passed = derive.catch_up_all(db.session, seconds=0)
    assert list(passed) == [
        "kinds",
        "sessions",
        f"funnel {current}",
        f"funnel {behind}",
        derive.PURGED,
    ]
    assert passed[f"funnel {current}"] == 3 and passed[f"funnel {behind}"] == 5


# --- 5. a report while the first derivation is far behind ----------------------------------------


def test_a_report_far_behind_is_computed_from_the_events_and_says_so(site, monkeypatch):
    app, client, site_id = site
    store(app, site_id, random_events(12, 120))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    derivation = derivation_of(app, funnel_id)
    monkeypatch.setattr(read_catch_up, "REPORT_CATCH_UP_LIMIT", 50)
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)
    assert cursor_of(app, derivation) == 0  # the report did not derive 120 events itself
    page = client.get(f"/sites/{site_id}/funnels/{funnel_id}?{urlencode(RANGE)}")
    assert "still being prepared" in page.get_data(as_text=True)
    with app.app_context():  # the fold process derives it meanwhile
        derive.catch_up_all(db.session)
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)
    assert cursor_of(app, derivation) > 0
    page = client.get(f"/sites/{site_id}/funnels/{funnel_id}?{urlencode(RANGE)}")
    assert "still being prepared" not in page.get_data(as_text=True)


def test_a_strict_funnel_is_never_said_to_be_prepared(site, monkeypatch):
    app, client, site_id = site
    store(app, site_id, random_events(14, 60))
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    edit_funnel(client, site_id, funnel_id, EDITS["mode"])
    monkeypatch.setattr(read_catch_up, "REPORT_CATCH_UP_LIMIT", 0)
    page = client.get(f"/sites/{site_id}/funnels/{funnel_id}?{urlencode(RANGE)}")
    assert page.status_code == 200
    assert "still being prepared" not in page.get_data(as_text=True)
    assert_saved_equals_unsaved(app, client, site_id, funnel_id)


# --- 6. the migration keeps what was derived ---------------------------------------------


def test_the_migration_keeps_derived_rows_both_ways(site):
    app, client, site_id = site
    store(app, site_id, random_events(13, 120))
    first = save_funnel(client, site_id, "First", STEPS)
    second = save_funnel(client, site_id, "Second", [PRICING, PAID])
    edit_funnel(client, site_id, second, EDITS["window"])  # its derivation id is not its id
    reports = {f: client.get(saved_url(site_id, f)).get_json() for f in (first, second)}
    assert derivation_of(app, first) == first and derivation_of(app, second) != second
    rows = rows_of(app, first)
    with app.app_context():
        db.session.remove()
        downgrade(revision="0014")
        old_rows = [
            db.session.execute(
                text(f"SELECT COUNT(*) FROM {t.__tablename__} WHERE funnel_id = :f"),  # noqa: S608
                {"f": first},
            ).scalar()
            for t in DERIVED
        ]
        names = db.session.execute(text("SELECT name FROM derived_cursors")).scalars().all()
        db.session.remove()
        upgrade()
    assert old_rows == rows and f"funnel:{first}" in names and f"funnel:{second}" not in names
    assert derivation_of(app, first) == first and rows_of(app, first) == rows
    with app.app_context():
        newest = db.session.scalar(select(func.max(Event.id)))
    assert cursor_of(app, first) == newest  # nothing to derive again
    for funnel_id, report in reports.items():
        assert client.get(saved_url(site_id, funnel_id)).get_json() == report
    assert_saved_equals_unsaved(app, client, site_id, second)
