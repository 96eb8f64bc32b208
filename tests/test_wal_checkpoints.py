"""WAL checkpoints on their own thread: the WAL is copied and started over, writers are not
held back when there is nothing to copy, one leader per database, and the real server runs
one."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shutil
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
import requests
from flask import Flask

from datalook.sql import filelock
from datalook.sql.wal_checkpoints import (
    AUTOCHECKPOINT_PAGES,
    Checkpointer,
    checkpoint,
    sqlite_file,
    start_for,
)
from tests.factories import bearer


def _wal_database(path: Path) -> sqlite3.Connection:
    """A WAL database with one table and no automatic checkpoints (as a lone writer sees)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
    return connection


def _write(connection: sqlite3.Connection, commits: int) -> None:
    """Commit one row at a time, each under the database's write lock (as ingest does)."""
    lock = filelock.for_database(_path_of(connection))
    for _ in range(commits):
        with lock.hold():
            connection.execute("INSERT INTO t (body) VALUES (?)", ("x" * 500,))


def _path_of(connection: sqlite3.Connection) -> str:
    """The main database file of a connection."""
    return connection.execute("PRAGMA database_list").fetchone()[2]


def _wal_frames(connection: sqlite3.Connection) -> int:
    """Frames in the WAL now (a PASSIVE checkpoint reports them)."""
    return connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def test_a_checkpoint_copies_the_wal_and_the_next_writer_starts_it_over(tmp_path):
    writer = _wal_database(tmp_path / "db.sqlite")
    _write(writer, 200)
    with closing(sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)) as own:
        frames, copied = checkpoint(own, filelock.for_database(_path_of(writer)), None)
        assert frames >= 200 and copied == frames
        _write(writer, 1)
        # The WAL was started over from its beginning: one commit's frames, not 201.
        assert 0 < _wal_frames(own) < 5


def _hold_lock(path: str, held, release) -> None:
    """Hold the database's write lock from another process until told to let go."""
    with filelock.WriteLock(path + ".lock").hold():
        held.set()
        release.wait(10)


def _checkpoint_in_thread(connection, path: str, last) -> threading.Event:
    """Run checkpoint() on a thread; the returned event is set when it has returned."""
    done = threading.Event()

    def run() -> None:
        checkpoint(connection, filelock.for_database(path), last)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_the_tail_pass_holds_writers_back_only_when_there_is_something_new(tmp_path):
    path = str(tmp_path / "db.sqlite")
    writer = _wal_database(Path(path))
    _write(writer, 20)
    own = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    last = checkpoint(own, filelock.for_database(path), None)
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(path, held, release))
    holder.start()
    try:
        assert held.wait(10)
        # Nothing committed since the last call: it returns while a writer holds the lock.
        assert _checkpoint_in_thread(own, path, last).wait(2)
        # A new commit: the tail pass waits for the writers' lock.
        writer.execute("INSERT INTO t (body) VALUES ('new')")
        waiting = _checkpoint_in_thread(own, path, last)
        assert not waiting.wait(0.5)
        release.set()
        assert waiting.wait(5)
    finally:
        release.set()
        holder.join(10)
        own.close()


def test_one_checkpointer_leads_and_another_takes_over_when_it_stops(tmp_path):
    path = str(tmp_path / "db.sqlite")
    _wal_database(Path(path)).close()
    first, second = Checkpointer(path, interval=0.02), Checkpointer(path, interval=0.02)
    first.start()
    assert first.leading.wait(5)
    second.start()
    time.sleep(0.3)
    assert not second.leading.is_set()
    first.stop()
    assert not first.leading.is_set()
    assert second.leading.wait(5)  # it retries the lead every second
    second.stop()


# Commits between two waits for the checkpointer (each commit adds a page or two to the WAL).
RUN = 100


def _wal_salt(path: str) -> bytes:
    """The WAL header's salts: SQLite changes them whenever the WAL is restarted."""
    with open(path + "-wal", "rb") as wal:
        return wal.read(24)[16:24]


def _write_many(path: str, total: int, commits) -> None:
    """A separate writer process committing at least `total` rows one by one: runs of RUN
    as fast as it can, each followed by one commit every 20 ms until a commit restarts the
    WAL (its salts change; the checkpointer copies the WAL, the next commit starts it
    over). A checkpointer starved of CPU on a loaded machine then lets the WAL grow by a
    few pages, not by hundreds; one that never copies the WAL makes this writer fail."""
    connection = _wal_database(Path(path))
    count = 0
    while count < total:
        salt = _wal_salt(path)
        _write(connection, RUN)
        count += RUN
        deadline = time.monotonic() + 60
        while _wal_salt(path) == salt:
            if time.monotonic() > deadline:
                raise SystemExit(f"the WAL was not restarted after {count} commits")
            time.sleep(0.02)
            _write(connection, 1)
            count += 1
    commits.value = count
    connection.close()


def test_the_wal_stays_small_under_a_steady_stream_of_writes(tmp_path):
    path = str(tmp_path / "db.sqlite")
    # Kept open to the end: the last connection to close would remove the WAL file.
    idle = _wal_database(Path(path))
    context = multiprocessing.get_context("spawn")
    commits = context.Value("i", 0)
    # A number of commits, not a duration: how fast this machine writes is not the point.
    writer = context.Process(target=_write_many, args=(path, 2000, commits))
    checkpointer = Checkpointer(path, interval=0.05)
    checkpointer.start()
    writer.start()
    writer.join(600)
    checkpointer.stop()
    assert writer.exitcode == 0 and commits.value >= 2000
    # Without the restarts the WAL file would hold at least one 4 KiB page per commit.
    wal_bytes = os.path.getsize(path + "-wal")
    assert wal_bytes < commits.value * 4096 / 4, (wal_bytes, commits.value)
    assert idle.execute("SELECT count(*) FROM t").fetchone()[0] == commits.value
    idle.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////srv/datalook/datalook.db", "/srv/datalook/datalook.db"),
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://user@localhost/datalook", None),
    ],
)
def test_only_a_sqlite_file_gets_a_checkpointer(url, expected):
    assert sqlite_file(url) == expected


def test_start_for_starts_one_checkpointer_per_app(make_app):
    app = make_app()
    first = start_for(app)
    try:
        assert first is not None and start_for(app) is first
        assert first.leading.wait(5)
    finally:
        first.stop()


def test_an_app_without_a_database_gets_none():
    assert start_for(Flask("bare")) is None


def test_app_connections_leave_checkpoints_to_the_thread(app):
    from datalook.extensions import db

    with app.app_context():
        setting = db.session.execute(db.text("PRAGMA wal_autocheckpoint")).scalar()
    assert setting == AUTOCHECKPOINT_PAGES


@pytest.mark.slow
def test_the_server_checkpoints_without_a_writer_doing_it(live_server, tmp_path):
    token = live_server.new_token()
    body = {"event_name": "success", "name": "paid", "page_path": "/done"}
    for _ in range(30):
        response = requests.post(
            live_server.event_url, json=body, headers=bearer(token), timeout=10
        )
        assert response.status_code == 204
    # One worker leads: the lead file is locked while the server runs.
    lead = os.open(live_server.instance / "datalook.db.checkpointer", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(lead, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(lead)
    # 30 events are far below SQLite's own threshold, yet they reach the database file
    # itself: a copy of it without its WAL holds them.
    deadline = time.monotonic() + 5
    stored = None
    while stored != 30 and time.monotonic() < deadline:
        time.sleep(0.2)
        shutil.copy(live_server.instance / "datalook.db", tmp_path / "copy.db")
        with closing(sqlite3.connect(tmp_path / "copy.db")) as copy:
            try:
                stored = copy.execute("SELECT count(*) FROM events").fetchone()[0]
            except sqlite3.DatabaseError:  # copied in the middle of a checkpoint: again
                stored = None
    assert stored == 30
