"""Refusals known to stand until a known moment, remembered by one process.

A flood of refused requests should cost the server as little as it can: most of a refusal's
cost is finding out again what the previous request of the same sender already found. Some
of those answers provably stand for a while. A moving window that refuses a request records
nothing for it, and no process can take entries out of a window, so an identity refused now
stays refused until its oldest entry leaves the window (the refusal's reset time, its
Retry-After); remembering that state until then answers exactly what spending again would.

This module is the memory: bounded, per process (a fork starts empty), entries forgotten at
their own deadline. What may be remembered, and for how long, is the caller's to prove.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_ENTRIES = 4096  # identities remembered at once (a flood of many senders stays bounded)


class Standing(Generic[V]):
    """Values that hold until their own deadline (on whatever clock the caller reads)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[V, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, now: float) -> V | None:
        """The value remembered for `key` if its deadline is still after `now`, else None."""
        found = self._entries.get(key)
        if found is None:
            return None
        if now < found[1]:
            return found[0]
        with self._lock:
            if self._entries.get(key) is found:
                del self._entries[key]
        return None

    def remember(self, key: Hashable, value: V, until: float, now: float) -> None:
        """Remember `value` for `key` until the moment `until` (nothing if it is past)."""
        if until <= now:
            return
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                self._drop_expired(now)
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()  # a flood of new senders: start over, still exact
            self._entries[key] = (value, until)

    def forget(self, key: Hashable) -> None:
        """Forget `key` (a later answer proved the remembered one no longer holds)."""
        with self._lock:
            self._entries.pop(key, None)

    def _drop_expired(self, now: float) -> None:
        """Remove every entry whose deadline has passed (the caller holds the lock)."""
        for key in [key for key, (_, until) in self._entries.items() if until <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        """How many entries are remembered (expired ones included until looked at)."""
        return len(self._entries)
