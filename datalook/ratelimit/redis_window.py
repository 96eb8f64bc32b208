"""The rate-limit storage for several hosts: exact moving windows in Redis.

Lua scripts run atomically on the server and stamp entries with the *server's* clock
(``TIME``), so hosts with skewed clocks still share one window. If Redis is unreachable the
storage degrades to a per-process in-memory window (memory.MemoryWindow) instead of failing
requests, and recovers by itself. The rule is window.py's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from limits.errors import ConfigurationError
from limits.storage import MovingWindowSupport, Storage
from redis.backoff import NoBackoff
from redis.retry import Retry

from .memory import MemoryWindow
from .window import (
    REDIS_SCHEMES,
    US_PER_SECOND,
    Clock,
    hit_possible,
    option_clock,
    option_float,
)

logger = logging.getLogger(__name__)

DEFAULT_REDIS_PREFIX = "datalook:rl:"

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
        self.clock: Clock = option_clock(options)
        socket_timeout = option_float(options, "socket_timeout", 0.25)
        connect_timeout = option_float(options, "connect_timeout", 0.25)
        self.retry_interval = option_float(options, "retry_interval", 1.0)
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
        if not hit_possible(limit, expiry, amount):
            return False
        return bool(
            self._call(
                lambda: self._acquire(
                    keys=[self._k(key)], args=[limit, expiry * US_PER_SECOND, amount]
                ),
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
                keys=[self._k(key)], args=[limit, expiry * US_PER_SECOND]
            )
            local_now = self.clock()
            if not count:
                return local_now, 0
            return local_now + (int(oldest) - int(server_now)) / US_PER_SECOND, int(count)

        return self._call(from_redis, lambda: self.fallback.get_moving_window(key, limit, expiry))

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
