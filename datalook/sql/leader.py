"""One leader per host for a background job; the others wait to take over.

Some jobs need one runner per host however many processes serve it (the SQLite WAL
checkpoints, the report fold). Each candidate runs a Leader: it tries an exclusive `flock`
on the job's lead file without waiting (filelock.try_flock), every RETRY_S until it gets it
or is stopped, then does the job while it holds the lead. The lock goes with the process
that holds it, however that process ends, so a waiting candidate takes over within
RETRY_S; stopping a leader passes the lead on the same way.

A lead is not the writers' lock (filelock.WriteLock), which every writer takes and releases
around each transaction and waits for: a lead is held for as long as the job runs, and a
candidate never blocks on it.
"""

from __future__ import annotations

import os
import threading

from . import filelock

RETRY_S = 1.0  # how often a waiting candidate tries the lead again


class Leader:
    """A job that one process per host runs at a time, while it holds the lead on
    `lead_path`; a subclass says what the job does (``lead``).

    ``run`` does it in the calling thread (a foreground process), ``start`` on a daemon
    thread of this process.
    """

    thread_name = "datalook-leader"

    def __init__(self, lead_path: str) -> None:
        self.lead_path = lead_path
        self.leading = threading.Event()  # set while this one holds the lead
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (the lead passes to another process)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop is asked (at once if it was)."""
        return self._stop.wait(seconds)

    def run(self) -> None:
        """Wait for the lead, then do the job until stopped; the lead is released however
        this ends."""
        fd = os.open(self.lead_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # The leader's process may exit (a restarted worker): its lock goes with it.
            while not filelock.try_flock(fd):
                if self.wait(RETRY_S):
                    return
            self.leading.set()
            self.lead()
        finally:
            self.leading.clear()
            os.close(fd)  # releases the lead

    def lead(self) -> None:
        """The job, done while this one leads; it returns once ``wait`` reports a stop."""
        raise NotImplementedError
