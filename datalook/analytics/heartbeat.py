"""The fold process's heartbeat, and its state as /readyz reports it.

The leading fold process of a host (analytics.worker) stamps a row of analytics_cursor,
named after the host, at every tick (``beat``), and every BEAT_WHILE_BUSY_S while a long part
of a tick runs (``beating``: a saved funnel's first derivation, staged from the columnar
copy, can take minutes). /readyz reads it back (``state``): the fold
is "down" when the stamp is older than max(3 × the fold interval, STALE_AFTER_MIN_S) or
missing, "behind" when more events are pending than the threshold
(ANALYTICS_FOLD_BEHIND_EVENTS) in the summaries, the kind index or the sessions, "ok"
otherwise. Its reports are then late, not wrong: the server stays in service (readiness
"degraded", not 503). No Flask here.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Engine, select

from ..models import utcnow
from ..sql.connections import dialect_insert, write_lock
from . import backlog, kinds, sessions
from .rollups import fold as summaries
from .rollups.models import SummaryCursor

log = logging.getLogger(__name__)

STALE_AFTER_MIN_S = 30.0
BEAT_WHILE_BUSY_S = 5.0  # well inside STALE_AFTER_MIN_S
PREFIX = "fold@"  # the heartbeat rows of analytics_cursor: fold@<host name>


def row_name(host: str | None = None) -> str:
    """The heartbeat row of this host (or of `host`): one per host, as one fold leads per
    host, and the row fits the table's 32 characters."""
    return (PREFIX + (host or socket.gethostname()))[:32]


def beat(engine: Engine) -> None:
    """Stamp this host's heartbeat now (a short write under the writers' lock); its version
    counts the ticks."""
    table = SummaryCursor.__table__
    now = utcnow()
    statement = dialect_insert(table, engine.dialect.name).on_conflict_do_update(
        index_elements=["name"], set_={"version": table.c.version + 1, "updated_at": now}
    )
    with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
        connection.execute(
            statement, {"name": row_name(), "last_event_id": 0, "version": 1, "updated_at": now}
        )


@contextlib.contextmanager
def beating(engine: Engine) -> Iterator[None]:
    """Stamp the heartbeat from a thread every BEAT_WHILE_BUSY_S while the block runs: the
    process is alive and working, though one part of its tick is long."""
    done, every = threading.Event(), BEAT_WHILE_BUSY_S

    def stamp() -> None:
        while not done.wait(every):
            try:
                beat(engine)
            except Exception:  # an outage: the tick itself fails and says so
                log.debug("heartbeat not stamped", exc_info=True)

    thread = threading.Thread(target=stamp, name="datalook-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def last_beat(bind) -> datetime | None:
    """When this host's fold last stamped its heartbeat (None: never)."""
    return bind.execute(
        select(SummaryCursor.updated_at).where(SummaryCursor.name == row_name())
    ).scalar()


def pending(bind) -> int:
    """Events not yet folded into the summaries, the kind index or the sessions (the
    furthest behind of the three), estimated from the ids."""
    newest = backlog.newest_id(bind)
    folded = bind.execute(
        select(SummaryCursor.last_event_id).where(SummaryCursor.name == summaries.CURSOR)
    ).scalar()
    derived = [kinds.position(bind), sessions.position(bind)]
    return max(0, newest - min(int(folded or 0), *derived))


class FoldState(NamedTuple):
    """The fold as /readyz reports it."""

    state: str  # "ok", "behind" or "down"
    pending_events: int
    last_heartbeat: datetime | None


def stale_after(interval_s: float) -> float:
    """Seconds after which a heartbeat is too old: the fold is down."""
    return max(3 * interval_s, STALE_AFTER_MIN_S)


def state(bind, interval_s: float, behind_at: int, now: datetime | None = None) -> FoldState:
    """The fold's state: "down" without a recent heartbeat, "behind" with more than
    `behind_at` events pending, else "ok"."""
    stamped = last_beat(bind)
    waiting = pending(bind)
    age = None if stamped is None else ((now or utcnow()) - stamped).total_seconds()
    if age is None or age > stale_after(interval_s):
        found = "down"
    elif waiting > behind_at:
        found = "behind"
    else:
        found = "ok"
    return FoldState(found, waiting, stamped)
