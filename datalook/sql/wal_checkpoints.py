"""WAL checkpoints off the writers' path, for a SQLite database served by many workers.

SQLite's automatic checkpoint runs inside the commit that fills the WAL past 1,000 pages,
while that writer still holds the write lock (filelock), so every other writer waits for
it: about 4 ms of copying and fsync every few hundred events, which set the p99 of
POST /event in the benchmark. Instead, one thread per database, in whichever server worker
leads the host (sql.leader), checkpoints every INTERVAL_S (see ``checkpoint``). Writers
keep a far higher automatic threshold (AUTOCHECKPOINT_PAGES, set on every connection by
sql/connections.py) as a safety net: should the thread stop, the WAL is still bounded. The
net must stay well above what the WAL holds between two of the thread's restarts: an event
adds about 5 pages to the WAL, so at 4,000 events a second a net of 10,000 pages fired
inside a request's commit at nearly every interval, and every writer waited for a whole
checkpoint (the p99 of 15 to 29 ms that bench/README.md describes).
"""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy.engine import make_url

from . import filelock
from .leader import Leader

log = logging.getLogger(__name__)

AUTOCHECKPOINT_PAGES = 100_000  # about 400 MiB of WAL: reached only if the thread is stopped
# Each tick's tail pass holds writers back briefly, so ticks are not too frequent (the A/B
# figures behind 0.5 s are in bench/README.md); the WAL then holds about half a second of
# writes.
INTERVAL_S = 0.5
# Passes without the writers until a pass saw at most this many new frames (or the passes
# run out): the pass that holds the writers back then has little to copy.
TAIL_FRAMES = 64
MAX_CATCH_UP_PASSES = 3
_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"


def checkpoint(
    connection: sqlite3.Connection, writers: filelock.WriteLock, last: tuple[int, int] | None
) -> tuple[int, int]:
    """Copy the WAL into the database: the bulk while writers go on, the tail without them.

    A PASSIVE pass never waits and copies what was committed before it began; writers
    append meanwhile. Further passes copy what came during the one before, each shorter,
    until few frames came (TAIL_FRAMES). A last pass with the writers held back then copies
    that short tail, so that the next writer finds nothing uncopied and starts the WAL over
    from its beginning (otherwise it would only ever grow, up to the safety net). ``last``
    is what the previous call returned: when nothing was committed since, the writers are
    left alone. Returns (frames in the WAL, frames copied); (-1, -1) when not in WAL mode.
    """
    _busy, frames, copied = connection.execute(_PASSIVE).fetchone()
    if frames <= 0 or (frames, copied) == last:
        return frames, copied
    for _ in range(MAX_CATCH_UP_PASSES):
        before = frames
        _busy, frames, copied = connection.execute(_PASSIVE).fetchone()
        if frames - before <= TAIL_FRAMES:
            break
    with writers.hold():
        _busy, frames, copied = connection.execute(_PASSIVE).fetchone()
    return frames, copied


class Checkpointer(Leader):
    """A daemon thread that checkpoints one database file while it leads the host (one
    checkpointer per database is enough)."""

    thread_name = "datalook-wal-checkpoints"

    def __init__(self, database_path: str, interval: float = INTERVAL_S) -> None:
        super().__init__(database_path + ".checkpointer")
        self.database_path = database_path
        self.interval = interval

    def lead(self) -> None:
        """Checkpoint every interval on a connection of the thread's own."""
        writers = filelock.for_database(self.database_path)
        connection = sqlite3.connect(self.database_path, isolation_level=None)
        last = None
        try:
            while not self.wait(self.interval):
                try:
                    last = checkpoint(connection, writers, last)
                except sqlite3.Error as exc:  # e.g. a disk error: log it, try again later
                    log.warning("WAL checkpoint failed: %s", exc)
                    last = None
                    self.wait(1.0)
        finally:
            connection.close()


def sqlite_file(database_url: str) -> str | None:
    """The database file of a SQLite URL, or None for other databases and :memory:."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def start_for(app) -> Checkpointer | None:
    """Start the app's checkpointer in this server worker; None unless the app is on SQLite.

    The server's worker start (lifecycle.worker_started) calls this for whatever app it
    serves (the benchmark's bare baseline
    has no database at all).
    """
    url = getattr(app, "config", {}).get("SQLALCHEMY_DATABASE_URI")
    path = sqlite_file(url) if url else None
    if path is None:
        return None
    found = app.extensions.get("datalook_wal_checkpointer")
    if found is None:
        found = app.extensions["datalook_wal_checkpointer"] = Checkpointer(path)
        found.start()
    return found
