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
from collections.abc import Iterator
from contextlib import contextmanager


class WriteLock:
    """An exclusive lock shared by the threads and processes that use the same path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._pid = -1
        self._fd = -1
        self._thread_lock = threading.Lock()

    def _descriptor(self) -> int:
        """Open the lock file once per process (a forked child needs its own description)."""
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
            self._thread_lock = threading.Lock()
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock: threads of this process queue on a mutex, processes on flock."""
        fd = self._descriptor()
        with self._thread_lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
