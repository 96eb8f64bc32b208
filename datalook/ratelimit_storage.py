"""Exact moving-window rate-limit storages for the ``limits`` library.

DataLook promises "N requests per T seconds per key, sliding window": in ANY interval of
T seconds at most N requests of one key are accepted. The usual cheaper schemes break that
promise:

* A fixed window (one counter per epoch-aligned bucket) lets up to 2N through: N just before
  a bucket boundary and N just after it, all inside one T-second interval.
* A sliding-window counter (previous bucket weighted by the elapsed fraction plus the current
  bucket) assumes the previous bucket's hits were spread evenly. A burst at the end of the
  previous bucket is under-weighted, so it too approaches 2N in one trailing window.

So both storages here keep the actual timestamps of the accepted hits (a moving-window log)
and decide atomically:

    accept a hit of ``amount`` at time ``now`` iff
        live(now) + amount <= limit,   live(now) = entries with  now - expiry < ts <= now

i.e. the window is the half-open interval ``(now - expiry, now]``, exactly as the ``limits``
built-ins define it: an entry stamped ``t`` stops counting at exactly ``t + expiry``, so a hit
exactly ``expiry`` seconds after a refused one is accepted. A refused hit records nothing, so a
client that waits as told gets through. Only accepted entries are stored and entries older
than the window are dropped, so a key never holds more than ``limit`` entries.

Timestamps are integer microseconds. Floats would make ``(t + 10) - 10 == t`` false for
ordinary values such as ``t = 9.9``, turning boundary decisions into rounding accidents.

Storages (registered with ``limits`` by their URI scheme, for ``RATELIMIT_STRATEGY =
"moving-window"``):

* ``MappedWindowStorage`` (``datalook+mmap:////abs/path/ratelimit.window``, in
  mapped_window.py): the embedded default, a memory-mapped file shared by the host's workers.
* :class:`SQLiteWindowStorage` (``datalook+sqlite:////abs/path/ratelimit.db``): the same
  window in one SQLite file shared by every worker process on the host, check-and-record in
  one ``BEGIN IMMEDIATE`` transaction; about 4 times the cost of a mapped-file check, for
  operators who want the state queryable with SQL. A per-key running count makes a check
  O(1) amortised instead of counting the window's rows each time.
* :class:`RedisWindowStorage` (``datalook+redis://host:6379/0``): for several app hosts. Lua
  scripts run atomically on the server and stamp entries with the *server's* clock
  (``TIME``), so hosts with skewed clocks still share one window. If Redis is unreachable it
  degrades to a per-process in-memory window instead of failing requests, and recovers by
  itself.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage
from redis.backoff import NoBackoff
from redis.retry import Retry

from .filelock import WriteLock

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

SQLITE_SCHEME = "datalook+sqlite"
MMAP_SCHEME = "datalook+mmap"  # mapped_window.MappedWindowStorage, the embedded default
REDIS_SCHEMES = ("datalook+redis", "datalook+rediss")
DEFAULT_REDIS_PREFIX = "datalook:rl:"

_US = 1_000_000


def _to_us(seconds: float) -> int:
    """Convert float seconds to integer microseconds (the storages' time unit)."""
    return round(seconds * _US)


def _check_args(limit: int, expiry: int, amount: int) -> bool:
    """Return False for a hit that can never be accepted; raise on nonsense arguments."""
    if expiry <= 0 or amount < 0:
        raise ValueError(f"invalid rate limit arguments: expiry={expiry}, amount={amount}")
    # Like the limits built-ins: a hit costing more than the whole limit is refused outright.
    return 0 < amount <= limit


def retry_after_seconds(reset_time: float, now: float) -> int:
    """Whole seconds a refused client must wait: ceil(reset_time - now), at least 1.

    Rounding up means a client that waits exactly this long is never early (flask-limiter's
    own ``int(reset - now)`` truncates and can say 0).
    """
    return max(1, math.ceil(reset_time - now))


def resolve_storage_uri(uri: str | None, instance_path: str) -> str:
    """Map the RATELIMIT_STORAGE_URI setting to a URI of one of DataLook's storages.

    Empty means the embedded default, a memory-mapped window file in the instance folder;
    plain ``redis://`` and ``rediss://`` URLs are accepted so operators can paste the usual
    Redis URL.
    """
    if not uri or not uri.strip():
        path = os.path.abspath(os.path.join(instance_path, "ratelimit.window"))
        return f"{MMAP_SCHEME}:///{path}"  # "scheme:///" + "/abs/path"
    uri = uri.strip()
    scheme = urlsplit(uri).scheme
    if scheme in ("redis", "rediss"):
        return "datalook+" + uri
    if scheme in (MMAP_SCHEME, SQLITE_SCHEME) or scheme in REDIS_SCHEMES:
        return uri
    if scheme == "memory":
        # Per-process only: acceptable for tests, never for multi-worker deployments.
        return uri
    raise ValueError(
        f"RATELIMIT_STORAGE_URI {uri!r} is not supported: use empty (embedded default), "
        f"redis://host:port/db, rediss://..., {MMAP_SCHEME}:////absolute/path.window, "
        f"{SQLITE_SCHEME}:////absolute/path.db or memory:// (tests only)"
    )


def storage_path(uri: str, scheme: str, example_name: str) -> str:
    """Return the absolute file path of a ``scheme:////abs/path`` storage URI."""
    prefix = f"{scheme}://"
    if not uri.startswith(prefix):
        raise ConfigurationError(f"not a {scheme} URI: {uri!r}")
    # "scheme:///" + "/abs/path" (SQLAlchemy's convention): strip the separator slash.
    rest = uri[len(prefix) :]
    path = rest[1:] if rest.startswith("/") else rest
    if not os.path.isabs(path):
        raise ConfigurationError(
            f"{scheme} needs an absolute path ({scheme}:////abs/path/{example_name}), got {uri!r}"
        )
    return path


def measure_check_cost(
    storage: MovingWindowSupport,
    n: int = 2000,
    limit: int = 500,
    expiry: int = 10,
    keys: int = 64,
) -> dict[str, float]:
    """Time ``n`` acquire_entry calls and return mean/p50/p99/max in microseconds.

    Hits are spread over ``keys`` throwaway keys so that most of them take the accepting
    (writing) path, the expensive one; the keys are cleared afterwards.
    """
    run = uuid.uuid4().hex[:12]
    names = [f"bench/{run}/{i}" for i in range(keys)]
    samples: list[float] = []
    accepted = 0
    try:
        for i in range(n):
            start = time.perf_counter()
            ok = storage.acquire_entry(names[i % keys], limit, expiry)
            samples.append((time.perf_counter() - start) * _US)
            accepted += ok
    finally:
        for name in names:
            storage.clear(name)  # type: ignore[attr-defined]
    samples.sort()
    return {
        "n": float(n),
        "accepted": float(accepted),
        "mean_us": statistics.fmean(samples),
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[min(len(samples) - 1, math.ceil(len(samples) * 0.99) - 1)],
        "max_us": samples[-1],
    }


def _option_float(options: dict[str, Any], name: str, default: float) -> float:
    """Read a numeric storage option (config files may hand them over as strings)."""
    value = options.pop(name, default)
    return float(value)


def _option_clock(options: dict[str, Any]) -> Clock:
    """Read the injectable ``clock`` option (zero-arg callable returning float seconds)."""
    clock = options.pop("clock", None) or time.time
    if not callable(clock):
        raise ConfigurationError("rate-limit storage option 'clock' must be callable")
    return clock


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rl_window (
    key        TEXT PRIMARY KEY,
    live       INTEGER NOT NULL,  -- sum of n over this key's rl_entry rows
    expires_us INTEGER NOT NULL   -- newest entry + expiry: after this the key is idle
);
CREATE INDEX IF NOT EXISTS rl_window_expires ON rl_window (expires_us);
CREATE TABLE IF NOT EXISTS rl_entry (
    key TEXT NOT NULL,
    ts  INTEGER NOT NULL,  -- microseconds
    n   INTEGER NOT NULL   -- a hit of cost n is one row, not n rows
);
CREATE INDEX IF NOT EXISTS rl_entry_key_ts ON rl_entry (key, ts);
CREATE TABLE IF NOT EXISTS rl_counter (
    key        TEXT PRIMARY KEY,
    value      INTEGER NOT NULL,
    expires_us INTEGER NOT NULL
);
"""

# Connections inherited through fork() must not be used or closed by the child (SQLite's
# rule: closing could disturb the parent's locks); parking them here keeps them from being
# garbage-collected, which would close them.
_ABANDONED_CONNECTIONS: list[sqlite3.Connection] = []


class SQLiteWindowStorage(Storage, MovingWindowSupport):
    """Exact moving window in one SQLite file shared by all worker processes of a host.

    URI ``datalook+sqlite:////absolute/path/ratelimit.db``. Options: ``clock`` (zero-arg
    callable, float seconds; default ``time.time``), ``busy_timeout`` (seconds to wait for
    another process's write lock, default 2), ``cleanup_interval`` (seconds between sweeps of
    idle keys per process, default 60).
    """

    STORAGE_SCHEME = [SQLITE_SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        """Parse the URI and options; the database is opened lazily, per process."""
        self.clock: Clock = _option_clock(options)
        self.busy_timeout = _option_float(options, "busy_timeout", 2.0)
        self.cleanup_interval = _option_float(options, "cleanup_interval", 60.0)
        # Namespaces keys, e.g. when several apps share one file.
        self.key_prefix = str(options.pop("key_prefix", ""))
        if options:
            raise ConfigurationError(
                f"unknown {SQLITE_SCHEME} storage option(s): {', '.join(sorted(options))}"
            )
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.path = storage_path(uri, SQLITE_SCHEME, "ratelimit.db")
        # Writers queue in the kernel instead of in SQLite's sleeping busy handler.
        self._write_lock = WriteLock(self.path + ".lock")
        self._seen = threading.local()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._next_cleanup_us = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Errors that flask-limiter should treat as a storage failure."""
        return sqlite3.Error

    # -- connection management ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """Return this process's connection, (re)opening it lazily and after fork.

        Must be called with ``self._lock`` held.
        """
        if self._conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock instead
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # WAL lets readers (get_moving_window) run beside the single writer; the state is
            # not precious (losing it on power loss only forgets recent hits), hence no fsync.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _after_fork_check(self) -> None:
        """Drop connection and lock inherited from a parent process (gunicorn preload)."""
        pid = os.getpid()
        if pid != self._pid:
            # The parent's lock may have been held by another thread at fork time.
            self._lock = threading.Lock()
            if self._conn is not None:
                _ABANDONED_CONNECTIONS.append(self._conn)
            self._conn = None
            self._pid = pid

    def _run(self, body: Callable[[sqlite3.Connection], Any], write: bool) -> Any:
        """Run ``body`` in one transaction (IMMEDIATE for writes: take the lock up front,
        so two processes cannot both read the old count and both accept)."""
        self._after_fork_check()
        with self._lock, self._write_lock.hold() if write else contextlib.nullcontext():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = body(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return result

    def _now_us(self) -> int:
        """Current time in microseconds from the injectable clock."""
        return _to_us(self.clock())

    # -- moving window --------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Atomically record a hit of cost ``amount`` if the window has room; else record
        nothing and return False."""
        key = self.key_prefix + key
        if not _check_args(limit, expiry, amount):
            return False
        expiry_us = expiry * _US

        def body(conn: sqlite3.Connection) -> bool:
            # Read the clock inside the write lock: entries are then stamped in commit order,
            # so ordering across processes cannot produce a window with more than `limit`.
            now = self._now_us()
            cutoff = now - expiry_us
            live = self._expire_key(conn, key, cutoff)
            accepted = live + amount <= limit
            if accepted:
                conn.execute(
                    "INSERT INTO rl_entry (key, ts, n) VALUES (?, ?, ?)", (key, now, amount)
                )
                conn.execute(
                    "INSERT INTO rl_window (key, live, expires_us) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET live = excluded.live, "
                    "expires_us = excluded.expires_us",
                    (key, live + amount, now + expiry_us),
                )
                live += amount
            # Remember the window as this decision saw it: the rate-limit headers that follow
            # (get_moving_window) then describe exactly this decision, without another read.
            (oldest,) = conn.execute(
                "SELECT MIN(ts) FROM rl_entry WHERE key = ? AND ts > ?", (key, cutoff)
            ).fetchone()
            self._seen.window = (key, expiry_us, now, oldest, live)
            return accepted

        accepted = bool(self._run(body, write=True))
        self._maybe_cleanup()
        return accepted

    @staticmethod
    def _expire_key(conn: sqlite3.Connection, key: str, cutoff: int) -> int:
        """Delete the key's entries at or before ``cutoff``; return its live count.

        Each entry is deleted once, so this is O(1) amortised per hit and keeps the key's
        rows at most ``limit``.
        """
        row = conn.execute("SELECT live FROM rl_window WHERE key = ?", (key,)).fetchone()
        if row is None:
            return 0
        live = int(row[0])
        (expired,) = conn.execute(
            "SELECT COALESCE(SUM(n), 0) FROM rl_entry WHERE key = ? AND ts <= ?", (key, cutoff)
        ).fetchone()
        if expired:
            conn.execute("DELETE FROM rl_entry WHERE key = ? AND ts <= ?", (key, cutoff))
            live -= int(expired)
            conn.execute("UPDATE rl_window SET live = ? WHERE key = ?", (live, key))
        return live

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return (timestamp of the oldest live entry, live count), or (now, 0).

        Right after acquire_entry on the same key in the same thread, this is the window
        that decision saw (read once, inside its transaction).
        """
        key = self.key_prefix + key
        expiry_us = expiry * _US
        seen = getattr(self._seen, "window", None)
        if seen is not None:
            self._seen.window = None
            seen_key, seen_expiry, _at, oldest, live = seen
            if seen_key == key and seen_expiry == expiry_us:
                if oldest is None or live <= 0:
                    return self._now_us() / _US, 0
                return oldest / _US, live

        def body(conn: sqlite3.Connection) -> tuple[float, int]:
            now = self._now_us()
            cutoff = now - expiry_us
            row = conn.execute(
                "SELECT w.live - COALESCE("
                "  (SELECT SUM(n) FROM rl_entry WHERE key = ?1 AND ts <= ?2), 0),"
                " (SELECT MIN(ts) FROM rl_entry WHERE key = ?1 AND ts > ?2) "
                "FROM rl_window AS w WHERE w.key = ?1",
                (key, cutoff),
            ).fetchone()
            if row is None or not row[0] or row[1] is None:
                return now / _US, 0
            return row[1] / _US, int(row[0])

        return self._run(body, write=False)  # type: ignore[no-any-return]

    # -- idle-key cleanup -------------------------------------------------------------------

    def _maybe_cleanup(self) -> None:
        """Sweep idle keys at most once per ``cleanup_interval`` per process (amortised)."""
        now = self._now_us()
        if now < self._next_cleanup_us:
            return
        self._next_cleanup_us = now + _to_us(self.cleanup_interval)
        self.cleanup()

    def cleanup(self, batch: int = 1000) -> int:
        """Delete keys whose newest entry has expired (and expired counters); return how many.

        Works in batches so no single transaction holds the write lock for long.
        """
        removed = 0
        while True:

            def body(conn: sqlite3.Connection) -> int:
                now = self._now_us()
                idle = [
                    k
                    for (k,) in conn.execute(
                        "SELECT key FROM rl_window WHERE expires_us <= ? LIMIT ?", (now, batch)
                    )
                ]
                for key in idle:
                    conn.execute("DELETE FROM rl_entry WHERE key = ?", (key,))
                    conn.execute("DELETE FROM rl_window WHERE key = ?", (key,))
                cur = conn.execute("DELETE FROM rl_counter WHERE expires_us <= ?", (now,))
                return len(idle) + max(cur.rowcount, 0)

            count = int(self._run(body, write=True))
            removed += count
            if count < batch:
                return removed

    # -- fixed-window counters (abstract in Storage; unused by the moving window) ----------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to a counter that lives ``expiry`` seconds from its first hit."""
        key = self.key_prefix + key

        def body(conn: sqlite3.Connection) -> int:
            now = self._now_us()
            row = conn.execute(
                "INSERT INTO rl_counter (key, value, expires_us) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (key) DO UPDATE SET "
                " value = CASE WHEN expires_us <= ?4 THEN ?2 ELSE value + ?2 END,"
                " expires_us = CASE WHEN expires_us <= ?4 THEN ?3 ELSE expires_us END "
                "RETURNING value",
                (key, amount, now + expiry * _US, now),
            ).fetchone()
            return int(row[0])

        return int(self._run(body, write=True))

    def get(self, key: str) -> int:
        """Current value of a counter, 0 if absent or expired."""
        key = self.key_prefix + key

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT value FROM rl_counter WHERE key = ? AND expires_us > ?",
                (key, self._now_us()),
            ).fetchone()
            return int(row[0]) if row else 0

        return int(self._run(body, write=False))

    def get_expiry(self, key: str) -> float:
        """Expiry time (epoch seconds) of a counter, or now if absent."""
        key = self.key_prefix + key

        def body(conn: sqlite3.Connection) -> float:
            now = self._now_us()
            row = conn.execute(
                "SELECT expires_us FROM rl_counter WHERE key = ? AND expires_us > ?", (key, now)
            ).fetchone()
            return (row[0] if row else now) / _US

        return float(self._run(body, write=False))

    # -- administration -----------------------------------------------------------------

    def check(self) -> bool:
        """True if the database file can be opened and queried."""
        try:
            self._run(lambda conn: conn.execute("SELECT 1").fetchone(), write=False)
        except sqlite3.Error:
            return False
        return True

    def clear(self, key: str) -> None:
        """Forget everything recorded for ``key``."""
        key = self.key_prefix + key

        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM rl_entry WHERE key = ?", (key,))
            conn.execute("DELETE FROM rl_window WHERE key = ?", (key,))
            conn.execute("DELETE FROM rl_counter WHERE key = ?", (key,))

        self._run(body, write=True)

    def reset(self) -> int | None:
        """Forget all keys; return how many were removed."""

        def body(conn: sqlite3.Connection) -> int:
            (windows,) = conn.execute("SELECT COUNT(*) FROM rl_window").fetchone()
            (counters,) = conn.execute("SELECT COUNT(*) FROM rl_counter").fetchone()
            conn.execute("DELETE FROM rl_entry")
            conn.execute("DELETE FROM rl_window")
            conn.execute("DELETE FROM rl_counter")
            return int(windows) + int(counters)

        return int(self._run(body, write=True))

    def close(self) -> None:
        """Close this process's connection (it is reopened on the next use)."""
        self._after_fork_check()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def row_counts(self) -> dict[str, int]:
        """Rows per table, for tests and diagnostics of the O(limit) bound."""

        def body(conn: sqlite3.Connection) -> dict[str, int]:
            return {
                table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
                for table in ("rl_window", "rl_entry", "rl_counter")
            }

        return self._run(body, write=False)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# In-memory fallback
# --------------------------------------------------------------------------------------------


class MemoryWindow:
    """Per-process exact moving window, thread-safe, used while Redis is unreachable.

    Not limits' MemoryStorage: its expiry timer in 5.8.0 can raise "threads can only be
    started once" under concurrency. Here expired entries are dropped lazily on access and
    idle keys are swept at most once per ``sweep_interval`` seconds, all under one lock.
    """

    def __init__(self, clock: Clock = time.time, sweep_interval: float = 10.0) -> None:
        """Create an empty window store reading time from ``clock``."""
        self.clock = clock
        self.sweep_interval = sweep_interval
        self._lock = threading.Lock()
        # key -> (deque of [ts_us, n] oldest first, [live count, expiry_us])
        self._entries: dict[str, deque[tuple[int, int]]] = {}
        self._live: dict[str, int] = {}
        self._expiry: dict[str, int] = {}
        self._counters: dict[str, tuple[int, int]] = {}
        self._next_sweep_us = 0

    def _expire(self, key: str, cutoff: int) -> int:
        """Drop the key's entries at or before ``cutoff``; return its live count."""
        entries = self._entries.get(key)
        if entries is None:
            return 0
        live = self._live[key]
        while entries and entries[0][0] <= cutoff:
            live -= entries.popleft()[1]
        self._live[key] = live
        return live

    def _sweep(self, now: int) -> None:
        """Remove keys (and counters) whose newest entry has expired."""
        if now < self._next_sweep_us:
            return
        self._next_sweep_us = now + _to_us(self.sweep_interval)
        for key in [
            k for k, d in self._entries.items() if not d or d[-1][0] + self._expiry[k] <= now
        ]:
            del self._entries[key], self._live[key], self._expiry[key]
        for key in [k for k, (_, exp) in self._counters.items() if exp <= now]:
            del self._counters[key]

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record a hit if the window has room (same contract as the storages)."""
        if not _check_args(limit, expiry, amount):
            return False
        with self._lock:
            now = _to_us(self.clock())
            expiry_us = expiry * _US
            entries = self._entries.get(key)
            if entries:
                now = max(now, entries[-1][0])  # keep the deque sorted if the clock steps back
            live = self._expire(key, now - expiry_us)
            if live + amount > limit:
                return False
            if entries is None:
                entries = self._entries[key] = deque()
            entries.append((now, amount))
            self._live[key] = live + amount
            self._expiry[key] = expiry_us
            self._sweep(now)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return (oldest live entry, live count) or (now, 0)."""
        with self._lock:
            now = _to_us(self.clock())
            live = self._expire(key, now - expiry * _US)
            entries = self._entries.get(key)
            if not live or not entries:
                return now / _US, 0
            return entries[0][0] / _US, live

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Fixed-window counter increment."""
        with self._lock:
            now = _to_us(self.clock())
            value, exp = self._counters.get(key, (0, 0))
            if exp <= now:
                value, exp = 0, now + expiry * _US
            self._counters[key] = (value + amount, exp)
            return value + amount

    def get(self, key: str) -> int:
        """Fixed-window counter value (0 if absent or expired)."""
        with self._lock:
            value, exp = self._counters.get(key, (0, 0))
            return value if exp > _to_us(self.clock()) else 0

    def get_expiry(self, key: str) -> float:
        """Fixed-window counter expiry in epoch seconds (now if absent)."""
        with self._lock:
            now = _to_us(self.clock())
            _, exp = self._counters.get(key, (0, 0))
            return (exp if exp > now else now) / _US

    def clear(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            self._entries.pop(key, None)
            self._live.pop(key, None)
            self._expiry.pop(key, None)
            self._counters.pop(key, None)

    def reset(self) -> int:
        """Forget everything; return how many keys were dropped."""
        with self._lock:
            count = len(self._entries) + len(self._counters)
            self._entries.clear()
            self._live.clear()
            self._expiry.clear()
            self._counters.clear()
            return count


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------

# Server time in microseconds; clamped to the newest entry so the list stays sorted even if
# the server's clock steps backwards.
_LUA_NOW = """
-- Servers before 5.0 refuse writes after TIME unless effects replication is switched on.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Lua turns numbers into strings with 14 significant digits; 16-digit stamps need %d.
local function int(x) return string.format('%d', x) end
"""

# KEYS[1] = window list (newest first); ARGV = limit, expiry_us, amount.
# The list holds one element per unit of cost and is trimmed to `limit`, so it is O(limit).
# Accept iff fewer than limit-amount+1 entries are live, i.e. iff the entry at index
# limit-amount (the (limit-amount+1)-th newest) is absent or expired.
_LUA_ACQUIRE = (
    _LUA_NOW
    + """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local newest = redis.call('LINDEX', KEYS[1], 0)
if newest and tonumber(newest) > now then now = tonumber(newest) end
local probe = redis.call('LINDEX', KEYS[1], limit - amount)
if probe and tonumber(probe) > now - expiry then
  return 0
end
local chunk = {}
for i = 1, amount do
  chunk[#chunk + 1] = int(now)
  if #chunk == 1000 or i == amount then
    redis.call('LPUSH', KEYS[1], unpack(chunk))
    chunk = {}
  end
end
redis.call('LTRIM', KEYS[1], 0, limit - 1)
-- The key vanishes once its newest entry leaves the window.
redis.call('PEXPIRE', KEYS[1], math.ceil(expiry / 1000))
return 1
"""
)

# KEYS[1] = window list; ARGV = limit, expiry_us. Returns {server_now, oldest_live, count}.
# Live entries form a prefix of the list; binary search finds its end in O(log limit) LINDEXes.
_LUA_WINDOW = (
    _LUA_NOW
    + """
local cutoff = now - tonumber(ARGV[2])
local hi = math.min(redis.call('LLEN', KEYS[1]), tonumber(ARGV[1])) - 1
local lo = 0
local found = -1
while lo <= hi do
  local mid = math.floor((lo + hi) / 2)
  if tonumber(redis.call('LINDEX', KEYS[1], mid)) > cutoff then
    found = mid
    lo = mid + 1
  else
    hi = mid - 1
  end
end
if found < 0 then return {now, 0, 0} end
return {now, tonumber(redis.call('LINDEX', KEYS[1], found)), found + 1}
"""
)

# KEYS[1] = counter; ARGV = amount, expiry_ms. Fixed-window increment.
_LUA_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""

# Errors meaning "Redis is not reachable right now" (as opposed to a bug, e.g. WRONGTYPE).
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class RedisWindowStorage(Storage, MovingWindowSupport):
    """Exact moving window in Redis, timed by the Redis server's clock.

    URI ``datalook+redis://host:6379/0`` or ``datalook+rediss://...`` (any redis-py URL
    after the ``datalook+`` prefix). Options: ``key_prefix`` (default ``"datalook:rl:"``),
    ``socket_timeout`` / ``connect_timeout`` (seconds, default 0.25), ``retry_interval``
    (seconds between reconnection attempts while degraded, default 1), ``clock`` (local
    clock for the fallback window and for translating server timestamps, default
    ``time.time``).

    While Redis is unreachable no exception escapes: hits go to a per-process
    :class:`MemoryWindow`, one ``logger.error`` marks the outage, ``degraded`` is True, and
    Redis is retried at most once per ``retry_interval``; a warning marks the recovery.
    """

    STORAGE_SCHEME = list(REDIS_SCHEMES)

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        """Build the client (no connection yet) and register the Lua scripts."""
        self.key_prefix = str(options.pop("key_prefix", DEFAULT_REDIS_PREFIX))
        self.clock: Clock = _option_clock(options)
        socket_timeout = _option_float(options, "socket_timeout", 0.25)
        connect_timeout = _option_float(options, "connect_timeout", 0.25)
        self.retry_interval = _option_float(options, "retry_interval", 1.0)
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        scheme, rest = uri.split("://", 1)
        if scheme not in REDIS_SCHEMES:
            raise ConfigurationError(f"not a datalook+redis URI: {uri!r}")
        self.redis_url = scheme.removeprefix("datalook+") + "://" + rest
        self._client = redis.Redis.from_url(
            self.redis_url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            # redis-py retries 3 times with backoff by default; a rate limiter must answer
            # fast, and the fallback handles the outage instead.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            **options,
        )
        self._acquire = self._client.register_script(_LUA_ACQUIRE)
        self._window = self._client.register_script(_LUA_WINDOW)
        self._incr = self._client.register_script(_LUA_INCR)
        self.fallback = MemoryWindow(clock=self.clock)
        self._state_lock = threading.Lock()
        self._degraded = False
        self._next_attempt = 0.0

    def __repr__(self) -> str:
        """Show where the storage points without credentials."""
        parts = urlsplit(self.redis_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return f"<RedisWindowStorage {urlunsplit((parts.scheme, netloc, parts.path, '', ''))}>"

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Errors that flask-limiter should treat as a storage failure."""
        return redis.exceptions.RedisError

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the per-process fallback is in use."""
        return self._degraded

    def _k(self, key: str) -> str:
        """Namespace a limits key under the configured prefix."""
        return self.key_prefix + key

    # -- outage handling ------------------------------------------------------------------

    def _should_try_redis(self) -> bool:
        """Whether this call should go to Redis: always when healthy, else one probe per
        ``retry_interval`` (claimed under the lock so threads do not stampede a dead host)."""
        if not self._degraded:
            return True
        with self._state_lock:
            now = time.monotonic()
            if now < self._next_attempt:
                return False
            self._next_attempt = now + self.retry_interval
            return True

    def _mark_down(self, exc: BaseException) -> None:
        """Enter degraded mode; log only at the start of an outage."""
        with self._state_lock:
            self._next_attempt = time.monotonic() + self.retry_interval
            if self._degraded:
                return
            self._degraded = True
        logger.error(
            "rate-limit storage %r unreachable (%s: %s): using per-process in-memory windows "
            "until it recovers; limits are now per worker process",
            self,
            type(exc).__name__,
            exc,
        )

    def _mark_up(self) -> None:
        """Leave degraded mode after Redis answered again."""
        with self._state_lock:
            if not self._degraded:
                return
            self._degraded = False
        logger.warning("rate-limit storage %r reachable again: back to shared windows", self)

    def _call(self, redis_op: Callable[[], Any], fallback_op: Callable[[], Any]) -> Any:
        """Run ``redis_op``; while Redis is unreachable run ``fallback_op`` instead."""
        if self._should_try_redis():
            try:
                result = redis_op()
            except _UNREACHABLE as exc:
                self._mark_down(exc)
            else:
                if self._degraded:
                    self._mark_up()
                return result
        return fallback_op()

    # -- moving window --------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Atomically record a hit of cost ``amount`` if the window has room."""
        if not _check_args(limit, expiry, amount):
            return False
        return bool(
            self._call(
                lambda: self._acquire(keys=[self._k(key)], args=[limit, expiry * _US, amount]),
                lambda: self.fallback.acquire_entry(key, limit, expiry, amount),
            )
        )

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """Return (oldest live entry, live count) or (now, 0), on the LOCAL clock.

        Entries are stamped with the server's clock, but flask-limiter subtracts the local
        ``time.time()`` from ``oldest + expiry`` to compute Retry-After; translating by the
        observed server-local offset keeps that wait right on a host whose clock is skewed.
        """

        def from_redis() -> tuple[float, int]:
            server_now, oldest, count = self._window(
                keys=[self._k(key)], args=[limit, expiry * _US]
            )
            local_now = self.clock()
            if not count:
                return local_now, 0
            return local_now + (int(oldest) - int(server_now)) / _US, int(count)

        return self._call(  # type: ignore[no-any-return]
            from_redis, lambda: self.fallback.get_moving_window(key, limit, expiry)
        )

    # -- fixed-window counters (abstract in Storage; unused by the moving window) ----------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to a counter that lives ``expiry`` seconds from its first hit."""
        return int(
            self._call(
                lambda: self._incr(keys=[self._k("c/" + key)], args=[amount, expiry * 1000]),
                lambda: self.fallback.incr(key, expiry, amount),
            )
        )

    def get(self, key: str) -> int:
        """Current value of a counter, 0 if absent."""
        return int(
            self._call(
                lambda: int(self._client.get(self._k("c/" + key)) or 0),
                lambda: self.fallback.get(key),
            )
        )

    def get_expiry(self, key: str) -> float:
        """Expiry time (local epoch seconds) of a counter, or now if absent."""

        def from_redis() -> float:
            pttl = int(self._client.pttl(self._k("c/" + key)))
            return self.clock() + max(pttl, 0) / 1000

        return float(self._call(from_redis, lambda: self.fallback.get_expiry(key)))

    # -- administration -----------------------------------------------------------------

    def check(self) -> bool:
        """True if Redis answers a PING now (for /readyz); never raises."""
        try:
            ok = bool(self._client.ping())
        except redis.exceptions.RedisError as exc:
            if isinstance(exc, _UNREACHABLE):
                self._mark_down(exc)
            return False
        except OSError as exc:
            self._mark_down(exc)
            return False
        if ok:
            self._mark_up()
        return ok

    def clear(self, key: str) -> None:
        """Forget ``key`` in Redis (if reachable) and in the fallback."""
        self.fallback.clear(key)
        self._call(
            lambda: self._client.delete(self._k(key), self._k("c/" + key)),
            lambda: None,
        )

    def reset(self) -> int | None:
        """Delete every key under ``key_prefix`` (never the whole database)."""

        def from_redis() -> int:
            removed = 0
            batch: list[bytes] = []
            for name in self._client.scan_iter(match=self._escape_glob(self.key_prefix) + "*"):
                batch.append(name)
                if len(batch) >= 500:
                    removed += int(self._client.delete(*batch))
                    batch = []
            if batch:
                removed += int(self._client.delete(*batch))
            return removed

        dropped = self.fallback.reset()
        return int(self._call(from_redis, lambda: dropped))

    def close(self) -> None:
        """Close the pooled connections (they are reopened on the next use)."""
        self._client.close()

    @staticmethod
    def _escape_glob(text: str) -> str:
        """Escape Redis glob metacharacters so the prefix matches literally."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in text)
