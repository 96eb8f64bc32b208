"""Group commit (ingest/group_commit.py) on a real SQLite file: concurrent writes of one
process share a commit, each caller returns only once its write is committed, a batch the
database cannot take fails every write of it with nothing stored, and one write's own error
fails only that write."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing

import pytest
import requests
from sqlalchemy import create_engine

from datalook.ingest import group_commit
from datalook.ingest.group_commit import GroupCommit
from datalook.sql import filelock
from datalook.sql.connections import set_write_deadline
from tests.factories import bearer
from tests.live import LiveServer


@pytest.fixture
def database(tmp_path):
    """A WAL database file with one table of unique ids."""
    path = str(tmp_path / "group.db")
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE rows (id TEXT PRIMARY KEY)")
        connection.commit()
    return path


def committed(path: str) -> list[str]:
    """The ids another connection sees (committed rows only)."""
    with closing(sqlite3.connect(path)) as connection:
        return sorted(row[0] for row in connection.execute("SELECT id FROM rows"))


class Writes:
    """A batch runner that inserts each work item's id, with a gate the first batch can be
    held at (so that other writes queue behind it) and a record of each batch's items."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.held = threading.Event()  # set once the gated write is inside its transaction
        self.batches: list[list[str]] = []

    def run(self, cursor, items: list[str]) -> list[str]:
        """Insert the batch's ids; a "hold" item waits at the gate first."""
        self.batches.append(list(items))
        for item in items:
            if item == "hold":
                self.held.set()
                assert self.gate.wait(30)
                continue
            cursor.execute("INSERT INTO rows (id) VALUES (?)", (item,))
        return [f"stored {item}" for item in items]


def make_group(path: str, writes: Writes) -> GroupCommit:
    """A group commit of `path` running `writes` (the SQLite dialect, as the app's)."""
    return GroupCommit(create_engine(f"sqlite:///{path}").dialect, path, writes.run)


def submit_in_thread(group: GroupCommit, path: str, item: str, outcomes: dict, timeout_ms=5000):
    """Submit `item` from a thread of its own on its own connection; its result or error
    lands in `outcomes`."""

    def work() -> None:
        connection = sqlite3.connect(path, timeout=timeout_ms / 1000)
        try:
            outcomes[item] = group.submit(connection, item)
            # Returned: the write must be visible to any other connection right now.
            outcomes[item + " seen"] = item in committed(path) or item == "hold"
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[item] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def queue_behind_a_held_batch(group, path, writes, items, outcomes, timeout_ms=5000):
    """Start a held write, then queue `items` behind it; return every thread."""
    threads = [submit_in_thread(group, path, "hold", outcomes)]
    assert writes.held.wait(30)
    threads += [submit_in_thread(group, path, item, outcomes, timeout_ms) for item in items]
    deadline = time.monotonic() + 30
    while len(group._queue) < len(items):  # noqa: SLF001 - waiting for them to queue
        assert time.monotonic() < deadline, "the writes did not queue"
        time.sleep(0.01)
    return threads


def test_concurrent_writes_share_one_commit_and_each_returns_once_committed(database):
    writes = Writes()
    group = make_group(database, writes)
    outcomes: dict = {}
    items = [f"event-{n}" for n in range(6)]
    threads = queue_behind_a_held_batch(group, database, writes, items, outcomes)
    assert committed(database) == []  # nothing is committed while the first batch is held
    writes.gate.set()
    for thread in threads:
        thread.join(30)
    # The held write alone, then every write that queued meanwhile in one transaction.
    assert writes.batches[0] == ["hold"]
    assert sorted(writes.batches[1]) == items
    assert (group.batches, group.writes) == (2, 7)
    for item in items:
        assert outcomes[item] == f"stored {item}"
        assert outcomes[item + " seen"] is True
    assert committed(database) == items


def test_a_batch_the_database_cannot_take_fails_every_write_and_stores_nothing(database):
    writes = Writes()
    group = make_group(database, writes)
    outcomes: dict = {}
    items = ["a", "b", "c"]
    threads = queue_behind_a_held_batch(group, database, writes, items, outcomes, 100)
    # Another process's writer (it does not take our lock) holds the database meanwhile.
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        writes.gate.set()
        for thread in threads:
            thread.join(30)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert sorted(writes.batches[1]) == items  # they were one batch
    for item in items:
        assert isinstance(outcomes[item], sqlite3.OperationalError), outcomes[item]
    assert committed(database) == []
    # The group is not stuck: the next write is stored.
    submit_in_thread(group, database, "after", outcomes).join(30)
    assert outcomes["after"] == "stored after"
    assert committed(database) == ["after"]


def test_one_writes_own_error_fails_that_write_alone(database):
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("INSERT INTO rows (id) VALUES ('taken')")
        connection.commit()
    writes = Writes()
    group = make_group(database, writes)
    outcomes: dict = {}
    threads = queue_behind_a_held_batch(group, database, writes, ["x", "taken", "y"], outcomes)
    writes.gate.set()
    for thread in threads:
        thread.join(30)
    assert isinstance(outcomes["taken"], sqlite3.IntegrityError)
    assert outcomes["x"] == "stored x" and outcomes["y"] == "stored y"
    assert committed(database) == ["taken", "x", "y"]


def test_a_write_whose_budget_is_spent_fails_before_anything_of_it_runs(database):
    writes = Writes()
    group = make_group(database, writes)
    connection = sqlite3.connect(database)
    set_write_deadline(time.monotonic() - 0.001)
    try:
        with pytest.raises(filelock.LockTimeout):
            group.submit(connection, "late")
    finally:
        set_write_deadline(None)
        connection.close()
    assert writes.batches == []
    assert committed(database) == []


def test_each_process_and_database_has_its_own_group(database, tmp_path):
    dialect = create_engine(f"sqlite:///{database}").dialect
    first = group_commit.for_database(dialect, database, Writes().run)
    assert group_commit.for_database(dialect, database, Writes().run) is first
    other = str(tmp_path / "other.db")
    assert group_commit.for_database(dialect, other, Writes().run) is not first


@pytest.mark.slow
def test_a_threaded_worker_answers_204_only_for_committed_events(tmp_path):
    """The real server with one worker of 4 threads: concurrent requests' events may share
    a commit, and each 204 still means that its event is committed."""
    server = LiveServer(tmp_path / "instance", workers=1, extra_env={"WEB_THREADS": "4"})
    server.start()
    try:
        token = server.new_token()
        failures: list[str] = []

        def send(sender: int) -> None:
            with requests.Session() as session:
                for n in range(15):
                    event_id = f"t{sender}-{n}"
                    body = {"event_name": "click", "page_path": "/p", "event_id": event_id}
                    answer = session.post(
                        server.event_url, json=body, headers=bearer(token), timeout=30
                    )
                    if answer.status_code != 204:
                        failures.append(f"{event_id}: {answer.status_code} {answer.text[:200]}")
                    elif event_id not in stored_ids(server):
                        failures.append(f"{event_id}: answered 204 before its commit")

        senders = [threading.Thread(target=send, args=(n,)) for n in range(6)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(120)
        assert failures == []
        assert len(stored_ids(server)) == 6 * 15
    finally:
        server.stop()


def stored_ids(server: LiveServer) -> set[str]:
    """The event ids committed in the live server's database."""
    with closing(sqlite3.connect(server.instance / "datalook.db", timeout=10)) as connection:
        return {row[0] for row in connection.execute("SELECT event_id FROM events")}
