"""A cross-process write lock for SQLite files.

SQLite's own busy handler waits for a competing writer by sleeping in steps of 1 to 100 ms,
so under load from several worker processes most of the time goes into sleeping. An
advisory `flock` on a companion file queues the writers in the kernel instead: a waiter
wakes the moment the holder releases. SQLite's locking still guarantees correctness; this
only removes the sleeping.
"""

from __future__ import annotations

import fcntl
import os
import threading


class WriteLock:
    """An exclusive lock shared by the threads and processes that use the same path."""

    def __init__(self, path: str) -> None:
        self.path = path
        # (pid, descriptor, thread mutex), replaced as one value so that a thread never pairs
        # one process's descriptor with another's mutex.
        self._state: tuple[int, int, threading.Lock] = (-1, -1, threading.Lock())
        self._taken = threading.local()

    def _state_here(self) -> tuple[int, int, threading.Lock]:
        """Open the lock file once per process (a forked child needs its own description).

        Two threads racing through the first call each open a descriptor: harmless, since
        flock keeps distinct descriptions exclusive even within one process.
        """
        state = self._state
        if state[0] != os.getpid():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            state = self._state = (os.getpid(), fd, threading.Lock())
        return state

    def hold(self) -> WriteLock:
        """Hold the lock in a ``with`` block: threads of this process queue on a mutex,
        processes on flock. (A plain context manager, not a generator: it sits on every
        ingestion request twice.)"""
        return self

    def __enter__(self) -> WriteLock:
        """Take the lock."""
        _, fd, lock = self._state_here()
        lock.acquire()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            lock.release()
            raise
        self._taken.held = (fd, lock)  # what __exit__ releases
        return self

    def __exit__(self, *_exc: object) -> None:
        """Release the lock."""
        fd, lock = self._taken.held
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            lock.release()


_database_locks: dict[str, WriteLock] = {}


def for_database(path: str) -> WriteLock:
    """The write lock of a SQLite database file, one per path and process: every frequent
    writer (events, usage counters: database.write_lock) and the WAL checkpointer's held
    pass share it."""
    lock = _database_locks.get(path)
    if lock is None:
        lock = _database_locks.setdefault(path, WriteLock(path + ".lock"))
    return lock
