"""A cross-process write lock for SQLite files.

SQLite's own busy handler waits for a competing writer by sleeping in steps of 1 to 100 ms,
so under load from several worker processes most of the time goes into sleeping. An
advisory `flock` on a companion file queues the writers in the kernel instead: a waiter
wakes the moment the holder releases. SQLite's locking still guarantees correctness; this
only removes the sleeping.

This module holds the flock primitives of the package: WriteLock (an exclusive lock that
threads and processes wait for and release around their work: the writers' lock of a
database file, ``for_database``, or another lock file, ``for_path``) and ``try_flock``, on
which the leaders of sql.leader build.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import threading
import time


class LockTimeout(sqlite3.OperationalError):
    """The write lock was not free within the time allowed: the database is busy."""


class _Expired(Exception):
    """Raised by the alarm that bounds a blocking wait for the lock."""


# Whether the main thread is inside a bounded blocking flock right now: the alarm only
# interrupts that call, never code that runs after the lock was granted.
_alarm_armed = [False]


def _on_alarm(_signum, _frame) -> None:
    """End a bounded wait for the lock (and nothing else)."""
    if _alarm_armed[0]:
        raise _Expired


def try_flock(fd: int) -> bool:
    """Take the exclusive flock on `fd` without waiting; False if another holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _flock_within(fd: int, seconds: float) -> bool:
    """Take the flock on `fd` if it is free within `seconds`; whether it was taken.

    Uncontended: one non-blocking call. Contended on the main thread: a blocking flock, so
    the waiter still wakes the moment the lock is free, cut short by a one-shot alarm. On
    other threads (no signals there; the server's workers serve requests on one): short
    sleeps.
    """
    if try_flock(fd):
        return True
    if seconds <= 0:
        return False
    if threading.current_thread() is not threading.main_thread():
        return _flock_polling(fd, time.monotonic() + seconds)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        _alarm_armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _alarm_armed[0] = False
            return True
        except _Expired:
            # The alarm may have come just as the lock was granted: then it is ours.
            _alarm_armed[0] = False
            return _flock_polling(fd, 0.0)
    finally:
        _alarm_armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Polling waits (threads other than the main one, where the server's workers serve
# requests) start short, since a writer holds the lock for a fraction of a millisecond, and
# double up to a millisecond.
_FIRST_POLL_S = 0.00005
_LAST_POLL_S = 0.001


def _flock_polling(fd: int, deadline: float) -> bool:
    """Try the flock until `deadline` (monotonic), sleeping 50 µs, doubling to 1 ms,
    between tries."""
    pause = _FIRST_POLL_S
    while not try_flock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, _LAST_POLL_S)
    return True


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

    def hold(self, timeout: float | None = None) -> WriteLock:
        """Hold the lock in a ``with`` block: threads of this process queue on a mutex,
        processes on flock. With `timeout` (seconds), entering raises LockTimeout when the
        lock is not free by then. (A plain context manager, not a generator: it sits on every
        ingestion request twice.)"""
        self._taken.timeout = timeout
        return self

    def __enter__(self) -> WriteLock:
        """Take the lock (within the timeout given to ``hold``, if any)."""
        _, fd, lock = self._state_here()
        timeout = getattr(self._taken, "timeout", None)
        self._taken.timeout = None
        if timeout is None:
            lock.acquire()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                lock.release()
                raise
        else:
            deadline = time.monotonic() + timeout
            if not lock.acquire(timeout=max(timeout, 0.0)):
                raise LockTimeout("database is locked (waited for the writers' lock)")
            try:
                taken = _flock_within(fd, deadline - time.monotonic())
            except BaseException:
                lock.release()
                raise
            if not taken:
                lock.release()
                raise LockTimeout("database is locked (waited for the writers' lock)")
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


_path_locks: dict[str, WriteLock] = {}


def for_path(path: str) -> WriteLock:
    """The lock whose file is `path`, one per path and process (a lock held around longer
    work than a write, such as the report fold's host lock)."""
    lock = _path_locks.get(path)
    if lock is None:
        lock = _path_locks.setdefault(path, WriteLock(path))
    return lock
