"""The rule every DataLook rate-limit storage implements, and what they share.

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
"moving-window"``): ``mapped.MappedWindowStorage`` (``datalook+mmap:////abs/path.window``),
the embedded default shared by one host's workers; ``redis.RedisWindowStorage``
(``datalook+redis://host:6379/0``) for several hosts, with ``memory.MemoryWindow`` as its
per-process fallback while Redis is unreachable.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from limits.errors import ConfigurationError

Clock = Callable[[], float]

MMAP_SCHEME = "datalook+mmap"
REDIS_SCHEMES = ("datalook+redis", "datalook+rediss")

US_PER_SECOND = 1_000_000


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
    if scheme == MMAP_SCHEME or scheme in REDIS_SCHEMES:
        return uri
    if scheme == "memory":
        # Per-process only: acceptable for tests, never for multi-worker deployments.
        return uri
    raise ValueError(
        f"RATELIMIT_STORAGE_URI {uri!r} is not supported: use empty (embedded default), "
        f"redis://host:port/db, rediss://..., {MMAP_SCHEME}:////absolute/path.window "
        "or memory:// (tests only)"
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


def to_us(seconds: float) -> int:
    """Convert float seconds to integer microseconds (the storages' time unit)."""
    return round(seconds * US_PER_SECOND)


def hit_possible(limit: int, expiry: int, amount: int) -> bool:
    """Return False for a hit that can never be accepted; raise on nonsense arguments."""
    if expiry <= 0 or amount < 0:
        raise ValueError(f"invalid rate limit arguments: expiry={expiry}, amount={amount}")
    # Like the limits built-ins: a hit costing more than the whole limit is refused outright.
    return 0 < amount <= limit


def option_float(options: dict[str, Any], name: str, default: float) -> float:
    """Read a numeric storage option (config files may hand them over as strings)."""
    value = options.pop(name, default)
    return float(value)


def option_clock(options: dict[str, Any]) -> Clock:
    """Read the injectable ``clock`` option (zero-arg callable returning float seconds)."""
    clock = options.pop("clock", None) or time.time
    if not callable(clock):
        raise ConfigurationError("rate-limit storage option 'clock' must be callable")
    return clock
