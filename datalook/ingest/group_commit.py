"""Group commit: the writes of concurrent requests of one process, in one transaction.

A commit and the writers' lock around it cost as much as the event's own INSERT, and every
request paid them alone. Here each request thread hands its prepared write to the queue of
its database and waits. The first thread that finds no commit in progress leads: it takes
every write queued so far (its own among them), runs them in one transaction under the
writers' lock, commits once, and wakes the others. Writes queued meanwhile wait for that
commit to end; one of their threads then leads the next batch. No thread of its own: a
request's thread only ever waits for its own write, so a server that stops once its
requests are answered has nothing left to drain.

What an answer means is unchanged: a thread returns only after the commit that holds its
write, so a 204 still means committed. When the batch cannot be written (the lock's budget
spent, the database locked or gone, the commit refused), the transaction is rolled back and
every write of it gets that error, so every request answers 503 with nothing stored. An
error of one write's own (a constraint, a bug) rolls the batch back too; then each write is
run again alone, so that only that one fails.

Each write keeps its own busy budget: one whose deadline has already passed when its batch
starts fails at once (nothing of it was run), and the batch waits for the lock only as long
as the write with the least budget left may.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Dialect

from ..sql import filelock
from ..sql.connections import set_write_deadline, write_deadline, write_lock

# Run one batch inside the caller's transaction: each work item's result, in order.
RunBatch = Callable[[Any, list[Any]], list[Any]]


_UNSET = object()


class _Pending:
    """One request's write, waiting for the commit that holds it."""

    __slots__ = ("work", "deadline", "result", "error", "done")

    def __init__(self, work: Any, deadline: float | None) -> None:
        self.work = work
        self.deadline = deadline
        self.result: Any = _UNSET
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """The queue of one database's writes in one process, and the batches made of it."""

    def __init__(self, dialect: Dialect, database: str | None, run: RunBatch) -> None:
        """`run` executes a batch's work items on a cursor (the transaction is ours)."""
        self.dialect, self.database, self._run = dialect, database, run
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._busy = False
        # Kept for the tests and the benchmark's curiosity: batches committed, writes in them.
        self.batches = 0
        self.writes = 0

    def submit(self, connection: Any, work: Any) -> Any:
        """Write `work` durably, in a batch led by this thread (on `connection`, a DB-API
        connection) or by another; return its result once committed, or raise its error."""
        pending = _Pending(work, write_deadline())
        changed = self._changed
        with changed:
            self._queue.append(pending)
            while not pending.done:
                if self._busy:
                    changed.wait()
                    continue
                self._busy = True
                batch, self._queue = self._queue, []
                changed.release()
                try:
                    self._lead(connection, batch)
                finally:
                    changed.acquire()
                    self._busy = False
                    changed.notify_all()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _lead(self, connection: Any, batch: list[_Pending]) -> None:
        """Write a batch and settle every write of it (done, with a result or an error)."""
        try:
            now = time.monotonic()
            live = []
            for pending in batch:
                if pending.deadline is not None and pending.deadline <= now:
                    pending.error = filelock.LockTimeout(
                        "database is busy (the request waited its budget)"
                    )
                else:
                    live.append(pending)
            if live:
                self._write(connection, live)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter, never lost
            for pending in batch:
                if pending.error is None and pending.result is _UNSET:
                    pending.error = exc
        finally:
            for pending in batch:
                pending.done = True

    def _write(self, connection: Any, batch: list[_Pending]) -> None:
        """One transaction for the batch; each write alone again after an error of its own."""
        try:
            results = self._transaction(connection, batch)
        except _WriteFailed as failed:
            if len(batch) == 1:
                batch[0].error = failed.error
                return
            for pending in batch:  # which one failed is not known: each alone
                self._write(connection, [pending])
            return
        except BaseException as exc:  # the database could not take the batch: all fail
            for pending in batch:
                pending.error = exc
            return
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
        self.batches += 1
        self.writes += len(batch)

    def _transaction(self, connection: Any, batch: list[_Pending]) -> list[Any]:
        """Run the batch and commit, within the least budget left among its writes."""
        deadlines = [p.deadline for p in batch if p.deadline is not None]
        own = write_deadline()
        set_write_deadline(min(deadlines) if deadlines else None)
        works = [pending.work for pending in batch]
        try:
            return committed(connection, self.dialect, self.database, self._own_errors, works)
        finally:
            set_write_deadline(own)

    def _own_errors(self, cursor: Any, works: list[Any]) -> list[Any]:
        """`run`, its errors told apart: the database's own raised as they are, any other
        as a write's own (_WriteFailed)."""
        try:
            return self._run(cursor, works)
        except self._unavailable:
            raise
        except Exception as exc:
            raise _WriteFailed(exc) from exc

    @property
    def _unavailable(self) -> tuple[type[BaseException], ...]:
        """Errors that mean the database cannot take writes now (not one write's fault)."""
        dbapi = self.dialect.loaded_dbapi
        return (dbapi.OperationalError, dbapi.InterfaceError)


class _WriteFailed(Exception):
    """A write of the batch raised an error of its own (`error`), not the database."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def committed(
    connection: Any, dialect: Dialect, database: str | None, run: RunBatch, works: list[Any]
) -> list[Any]:
    """`run` the writes in one transaction under the writers' lock and commit; rolled back
    on any error, which propagates."""
    with write_lock(dialect, database):
        cursor = connection.cursor()
        try:
            results = run(cursor, works)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()
    return results


# One queue per process and database (a forked child starts its own: the parent's lock and
# waiters mean nothing there).
_groups: dict[tuple[int, str | None], GroupCommit] = {}
_groups_lock = threading.Lock()


def for_database(dialect: Dialect, database: str | None, run: RunBatch) -> GroupCommit:
    """This process's group commit of `database` (created on first use with `run`)."""
    key = (os.getpid(), database)
    group = _groups.get(key)
    if group is None:
        with _groups_lock:
            group = _groups.get(key)
            if group is None:
                group = _groups[key] = GroupCommit(dialect, database, run)
    return group
