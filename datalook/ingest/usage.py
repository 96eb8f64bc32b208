"""Per-key usage (last used, requests per hour), counted in memory and written in batches.

Counting every request with its own UPDATE would add a write to each ingestion; instead each
worker process accumulates counts and writes them in one small transaction at most every
FLUSH_INTERVAL seconds, and once more when the process exits (SIGTERM included).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict
from datetime import datetime
from typing import cast

from sqlalchemy import Table, update
from sqlalchemy.engine import Connection, Engine

from ..models import ApiKey, KeyUsage
from ..sql.connections import upsert, write_lock

FLUSH_INTERVAL = 2.0  # seconds
log = logging.getLogger(__name__)

_keys = cast(Table, ApiKey.__table__)
_usage = cast(Table, KeyUsage.__table__)


class UsageCounter:
    """Thread-safe, per-process accumulator of key usage."""

    def __init__(self, interval: float = FLUSH_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, datetime], int] = defaultdict(int)
        self._last_used: dict[int, datetime] = {}
        self._last_flush = time.monotonic()

    def record(self, key_pk: int, now: datetime) -> None:
        """Count one authenticated request of a key at `now` (naive UTC)."""
        hour = now.replace(minute=0, second=0, microsecond=0)
        with self._lock:
            self._counts[(key_pk, hour)] += 1
            if key_pk not in self._last_used or self._last_used[key_pk] < now:
                self._last_used[key_pk] = now

    def due(self) -> bool:
        """Return whether pending counts should be written now."""
        return bool(self._counts) and time.monotonic() - self._last_flush >= self.interval

    def _take(self) -> tuple[dict, dict]:
        """Remove and return everything pending."""
        with self._lock:
            counts, last_used = dict(self._counts), dict(self._last_used)
            self._counts.clear()
            self._last_used.clear()
            self._last_flush = time.monotonic()
        return counts, last_used

    def _restore(self, counts: dict, last_used: dict) -> None:
        """Put back counts whose write failed, so they are written next time."""
        with self._lock:
            for bucket, n in counts.items():
                self._counts[bucket] += n
            for key_pk, moment in last_used.items():
                self._last_used[key_pk] = max(moment, self._last_used.get(key_pk, moment))

    @staticmethod
    def _write(connection: Connection, counts: dict, last_used: dict) -> None:
        """Add the counts to the hourly buckets and move last-used times forward."""
        for (key_pk, hour), n in counts.items():
            connection.execute(
                upsert(
                    _usage,
                    {"api_key_id": key_pk, "hour": hour, "requests": n},
                    ["api_key_id", "hour"],
                    {"requests": _usage.c.requests + n},
                    connection.dialect.name,
                )
            )
        for key_pk, moment in last_used.items():
            connection.execute(
                update(_keys)
                .where(_keys.c.id == key_pk)
                .where(_keys.c.last_used_at.is_(None) | (_keys.c.last_used_at < moment))
                .values(last_used_at=moment)
            )

    def flush(self, engine: Engine) -> None:
        """Write pending counts in a transaction of their own; keep them if that fails."""
        counts, last_used = self._take()
        if not counts:
            return
        try:
            # The connection is checked out (and, if new, set up) before the writers' lock:
            # every other writer waits for what is done while it is held.
            with (
                engine.connect() as connection,
                write_lock(engine.dialect, engine.url.database),
                connection.begin(),
            ):
                self._write(connection, counts, last_used)
        except Exception:
            self._restore(counts, last_used)
            log.exception("could not write key usage counters; they will be retried")


def counter_for(extensions: dict) -> UsageCounter:
    """The app's own counter, kept in its `extensions` (one per app: apps never mix counts)."""
    return extensions.setdefault("datalook_usage", UsageCounter())


def flush_at_exit(counter: UsageCounter, engine: Engine) -> None:
    """Flush what is pending when the worker process exits."""
    atexit.register(counter.flush, engine)
