"""The per-process exact moving window: Redis's fallback while Redis is unreachable."""

from __future__ import annotations

import threading
import time
from collections import deque

from .window import US_PER_SECOND, Clock, hit_possible, to_us


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
        self._next_sweep_us = now + to_us(self.sweep_interval)
        for key in [
            k for k, d in self._entries.items() if not d or d[-1][0] + self._expiry[k] <= now
        ]:
            del self._entries[key], self._live[key], self._expiry[key]
        for key in [k for k, (_, exp) in self._counters.items() if exp <= now]:
            del self._counters[key]

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record a hit if the window has room (same contract as the storages)."""
        if not hit_possible(limit, expiry, amount):
            return False
        with self._lock:
            now = to_us(self.clock())
            expiry_us = expiry * US_PER_SECOND
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
            now = to_us(self.clock())
            live = self._expire(key, now - expiry * US_PER_SECOND)
            entries = self._entries.get(key)
            if not live or not entries:
                return now / US_PER_SECOND, 0
            return entries[0][0] / US_PER_SECOND, live

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Fixed-window counter increment."""
        with self._lock:
            now = to_us(self.clock())
            value, exp = self._counters.get(key, (0, 0))
            if exp <= now:
                value, exp = 0, now + expiry * US_PER_SECOND
            self._counters[key] = (value + amount, exp)
            return value + amount

    def get(self, key: str) -> int:
        """Fixed-window counter value (0 if absent or expired)."""
        with self._lock:
            value, exp = self._counters.get(key, (0, 0))
            return value if exp > to_us(self.clock()) else 0

    def get_expiry(self, key: str) -> float:
        """Fixed-window counter expiry in epoch seconds (now if absent)."""
        with self._lock:
            now = to_us(self.clock())
            _, exp = self._counters.get(key, (0, 0))
            return (exp if exp > now else now) / US_PER_SECOND

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
