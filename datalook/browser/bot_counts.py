"""Browser requests dropped as bots, counted per site, UTC day and bot name, written in batches.

/collect drops bots silently (their events never count), which left a developer testing with
a headless browser seeing nothing anywhere. The live view now says "3 requests filtered as
bots (HeadlessChrome)". Counting costs a dictionary update under a lock; each worker writes
its counts in one small transaction at most every FLUSH_INTERVAL seconds (as key usage is
written), and once more when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine

from ..models import Site
from ..sql.connections import upsert, write_lock
from .models import BotRequests

FLUSH_INTERVAL = 2.0  # seconds
# Distinct (site, day, bot) buckets one worker holds at most between flushes: a flood of
# made-up agents is counted under OTHER past it, never grows memory without bound.
MAX_BUCKETS = 1000
OTHER = "other bots"
log = logging.getLogger(__name__)
_table = cast(Table, BotRequests.__table__)
_sites = cast(Table, Site.__table__)


class BotCounter:
    """Thread-safe, per-process accumulator of dropped bot requests."""

    def __init__(self, interval: float = FLUSH_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, date, str], int] = defaultdict(int)
        self._last_flush = time.monotonic()

    def record(self, site_id: int, day: date, bot: str) -> None:
        """Count one dropped request of `bot` for a site on a UTC day."""
        bucket = (site_id, day, bot)
        with self._lock:
            if bucket not in self._counts and len(self._counts) >= MAX_BUCKETS:
                bucket = (site_id, day, OTHER)
            self._counts[bucket] += 1

    def due(self) -> bool:
        """Whether pending counts should be written now."""
        return bool(self._counts) and time.monotonic() - self._last_flush >= self.interval

    def _take(self) -> dict[tuple[int, date, str], int]:
        """Remove and return everything pending."""
        with self._lock:
            counts = dict(self._counts)
            self._counts.clear()
            self._last_flush = time.monotonic()
        return counts

    def _restore(self, counts: dict[tuple[int, date, str], int]) -> None:
        """Put back counts whose write failed, so that they are written next time."""
        with self._lock:
            for bucket, n in counts.items():
                self._counts[bucket] += n

    @staticmethod
    def _write(connection: Connection, counts: dict[tuple[int, date, str], int]) -> None:
        """Add the counts to the daily rows (those of sites deleted meanwhile are dropped:
        retried, they would fail every flush)."""
        sites = {site_id for site_id, _, _ in counts}
        present = set(connection.scalars(select(_sites.c.id).where(_sites.c.id.in_(sites))))
        for (site_id, day, bot), n in counts.items():
            if site_id not in present:
                continue
            connection.execute(
                upsert(
                    _table,
                    {"site_id": site_id, "day": day, "bot": bot, "requests": n},
                    ["site_id", "day", "bot"],
                    {"requests": _table.c.requests + n},
                    connection.dialect.name,
                )
            )

    def flush(self, engine: Engine) -> None:
        """Write pending counts in a transaction of their own; keep them if that fails."""
        counts = self._take()
        if not counts:
            return
        try:
            with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
                self._write(connection, counts)
        except Exception:
            self._restore(counts)
            log.exception("could not write the bot counters; they will be retried")


def bot_counter_for(extensions: dict) -> BotCounter:
    """The app's own counter, kept in its `extensions` (one per app)."""
    return extensions.setdefault("datalook_bot_counts", BotCounter())


def flush_at_exit(counter: BotCounter, engine: Engine) -> None:
    """Flush what is pending when the worker process exits."""
    atexit.register(counter.flush, engine)


@dataclass(frozen=True)
class Filtered:
    """Requests dropped as bots over the last days: how many, and by which bots (most first)."""

    requests: int
    bots: list[tuple[str, int]]


def recent(connection: Connection, site_id: int, today: date, days: int = 7) -> Filtered:
    """The site's dropped bot requests over the last `days` UTC days (today included)."""
    rows = connection.execute(
        select(_table.c.bot, func.sum(_table.c.requests))
        .where(_table.c.site_id == site_id, _table.c.day > today - timedelta(days=days))
        .group_by(_table.c.bot)
        .order_by(func.sum(_table.c.requests).desc(), _table.c.bot)
    ).all()
    bots = [(str(bot), int(n)) for bot, n in rows]
    return Filtered(sum(n for _, n in bots), bots)
