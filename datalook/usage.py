"""Per-key usage (last used, requests per hour), counted in memory and written in batches.

Counting every request with its own UPDATE would add a write to each ingestion; instead each
worker process accumulates counts and flushes them inside the next event transaction once
FLUSH_INTERVAL has passed, and once more when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine

from .database import upsert
from .models import ApiKey, KeyUsage

FLUSH_INTERVAL = 2.0  # seconds
log = logging.getLogger(__name__)

_keys = ApiKey.__table__
_usage = KeyUsage.__table__


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
            self._last_used[key_pk] = max(now, self._last_used.get(key_pk, now))

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

    def restore(self, counts: dict, last_used: dict) -> None:
        """Put back counts whose write failed, so they are written next time."""
        with self._lock:
            for bucket, n in counts.items():
                self._counts[bucket] += n
            for key_pk, moment in last_used.items():
                self._last_used[key_pk] = max(moment, self._last_used.get(key_pk, moment))

    def write(self, connection: Connection) -> tuple[dict, dict]:
        """Write pending counts in the caller's transaction; return them for `restore`.

        If the caller's transaction later rolls back, it must hand them to `restore`.
        """
        counts, last_used = self._take()
        if not counts:
            return counts, last_used
        try:
            for (key_pk, hour), n in counts.items():
                connection.execute(
                    upsert(
                        _usage,
                        {"api_key_id": key_pk, "hour": hour, "requests": n},
                        ["api_key_id", "hour"],
                        {"requests": _usage.c.requests + n},
                    )
                )
            for key_pk, moment in last_used.items():
                connection.execute(
                    update(_keys)
                    .where(_keys.c.id == key_pk)
                    .where((_keys.c.last_used_at.is_(None)) | (_keys.c.last_used_at < moment))
                    .values(last_used_at=moment)
                )
        except Exception:
            self.restore(counts, last_used)
            raise
        return counts, last_used

    def flush(self, engine: Engine) -> None:
        """Write pending counts in a transaction of their own."""
        pending: tuple[dict, dict] = ({}, {})
        try:
            with engine.begin() as connection:
                pending = self.write(connection)
        except Exception:
            self.restore(*pending)
            log.exception("could not write key usage counters; they will be retried")


counter = UsageCounter()


def install_exit_flush(engine: Engine) -> None:
    """Flush what is pending when the worker process exits."""
    atexit.register(counter.flush, engine)
