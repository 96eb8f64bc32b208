"""Tokens whose secret was found wrong for their key id, remembered by one process.

A flood of one wrong token costs a key look-up per request, only to find again what the
previous request found. A key's secret never changes (a rotation makes a new key, with a new
key id: apikeys.rotate_key), so a (key id, secret digest, kind) that did not match its key's
row never will: remembering it answers exactly what the look-up would, and revoking or
expiring the key changes nothing of that answer (a wrong secret is told so before the key's
state). Only a deletion changes what the key's owner may be shown: the refused-request log
names the key. So a remembered token skips its look-up only while that log would merely
count the refusal (the key's records for this second are spent, `quiet`); whenever a record
would be written, the look-up runs again and finds the key as it is now (a deleted key is
then an unknown key id, with no record).

Nothing of the secret is kept but its digest, the one the database stores anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ..ratelimit.standing import Standing


class _Named(Protocol):
    """What is remembered of the key a wrong token names (authentication.KnownKey)."""

    @property
    def id(self) -> int: ...


K = TypeVar("K", bound=_Named)

# How long a wrong token is remembered since it was last found wrong by a look-up (the
# answer would stay right for longer; this only bounds what a process keeps).
REMEMBER_FOR_S = 60.0


class WrongSecrets(Generic[K]):
    """The wrong tokens of one process, and when their refusal only needs counting."""

    def __init__(
        self,
        quiet: Callable[[int], bool],
        remember_for: float = REMEMBER_FOR_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`quiet(key_pk)`: whether a refusal naming that key would only be counted now."""
        self.quiet = quiet
        self.remember_for = remember_for
        self._clock = clock
        self._known: Standing[K] = Standing()

    def refused_quietly(self, key_id: str, digest: str, kind: str) -> K | None:
        """The key a remembered wrong token names, when its refusal needs no look-up; None
        when the token must be looked up (not remembered, or its refusal will be recorded)."""
        known = self._known.get((key_id, digest, kind), self._clock())
        if known is None or not self.quiet(known.id):
            return None
        return known

    def remember(self, key_id: str, digest: str, kind: str, key: K) -> None:
        """A look-up found this token's secret wrong for `key`."""
        now = self._clock()
        self._known.remember((key_id, digest, kind), key, now + self.remember_for, now)
