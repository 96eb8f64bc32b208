"""Spending rate limits and answering for them, without Flask.

flask-limiter owns the configured storage (limiter.py); the ingestion API spends its
budgets here through the two calls of the limits moving-window contract, because only an
authenticated key may spend a key's budget, which flask-limiter's view decorator cannot
express. The headers are written here too: flask-limiter's own Retry-After is truncated and
can be early.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MovingWindowSupport
from werkzeug.wrappers import Response

from ..envelope import PlainAnswer, error_response, plain_error
from .limit_text import describe
from .standing import Standing
from .window import retry_after_seconds

# Against token guessing: requests that fail authentication, per client address.
FAILED_AUTH_LIMIT = parse("60 per minute")
POLICY_NAME = "default"
# One bucket per key shared by /event and /events: a batch counts as one request.
EVENT_SCOPE = "event-api"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one identity stands after this request: for the decision and the headers."""

    item: RateLimitItem
    allowed: bool
    reset_time: float
    remaining: int


@functools.lru_cache(maxsize=1024)
def parsed(text: str) -> RateLimitItem:
    """Parse a limit string once (limits are few and change rarely)."""
    return parse(text)


@functools.lru_cache(maxsize=4096)
def storage_key(item: RateLimitItem, scope: str, identity: str) -> str:
    """The limit's key for one identity (limits builds it from several joined strings)."""
    return item.key_for(scope, identity)


def spend(
    storage: MovingWindowSupport, item: RateLimitItem, scope: str, identity: str
) -> LimitState | None:
    """Hit one limit on a storage and read where it stands; None if the storage failed.

    The same two storage calls as limits' MovingWindowRateLimiter.hit and
    get_window_stats, with the key built once.
    """
    key = storage_key(item, scope, identity)
    expiry = item.get_expiry()
    try:
        allowed = storage.acquire_entry(key, item.amount, expiry)
        window_start, used = storage.get_moving_window(key, item.amount, expiry)
    except Exception:
        _log_storage_failure()
        return None
    return LimitState(item, allowed, window_start + expiry, item.amount - used)


# When the last storage failure was logged (per process): one loud line a minute, not one per
# request, so that an outage (or a full mapped window table) cannot flood the log.
_FAILURE_LOG_INTERVAL = 60.0
_failure_logged_at = [-_FAILURE_LOG_INTERVAL]


def _log_storage_failure() -> None:
    """Log the current storage failure with its traceback, at most once a minute."""
    now = monotonic()
    if now - _failure_logged_at[0] >= _FAILURE_LOG_INTERVAL:
        _failure_logged_at[0] = now
        log.exception(
            "RATE LIMITING DISABLED: the rate-limit storage failed; requests go through "
            "unlimited until it recovers (further failures in the next minute are not logged)"
        )


def with_limit_headers(response: Any, state: LimitState | None) -> Any:
    """Attach a limit's state to an API response (Retry-After when refused).

    Works on any response whose ``headers`` can ``extend`` by (name, value) pairs: werkzeug's
    and the ingestion API's bodiless answer.
    """
    if state is not None:
        # extend, not update: no handler sets these, and appending skips a search per header.
        response.headers.extend(policy_headers(state.item, state.remaining, state.reset_time))
        if not state.allowed:
            response.headers["Retry-After"] = str(seconds_until(state.reset_time))
    return response


def too_many(state: LimitState, what: str) -> Response:
    """The 429 envelope with the limit, the wait, and every rate-limit header."""
    wait = seconds_until(state.reset_time)
    response = error_response(
        429,
        "rate_limited",
        f"{what}; retry in {wait} s.",
        extra={"limit": describe(state.item), "retry_after": wait},
    )
    return with_limit_headers(response, state)


def seconds_until(reset_time: float) -> int:
    """Whole seconds until `reset_time`, rounded up so a client is never early."""
    return retry_after_seconds(reset_time, time.time())


def policy_headers(item: RateLimitItem, remaining: int, reset_time: float) -> list[tuple[str, str]]:
    """Build the X-RateLimit-* and IETF RateLimit-Policy / RateLimit headers."""
    return _policy_headers(item, remaining, reset_time, _header_wait(reset_time, time.time()))


def _header_wait(reset_time: float, now: float) -> int:
    """The RateLimit header's t: whole seconds until `reset_time`, rounded up, at least 0."""
    return max(0, math.ceil(reset_time - now))


def _policy_headers(
    item: RateLimitItem, remaining: int, reset_time: float, wait: int
) -> list[tuple[str, str]]:
    """policy_headers, with the RateLimit header's wait given."""
    remaining = max(0, remaining)
    return [
        ("X-RateLimit-Limit", str(item.amount)),
        ("X-RateLimit-Remaining", str(remaining)),
        ("X-RateLimit-Reset", str(math.ceil(reset_time))),
        ("RateLimit-Policy", f'"{POLICY_NAME}";q={item.amount};w={item.get_expiry()}'),
        ("RateLimit", f'"{POLICY_NAME}";r={remaining};t={wait}'),
    ]


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The budgets of the ingestion API: per key (authenticated) and per failing address."""

    key_storage: MovingWindowSupport  # the keys' windows
    address_storage: MovingWindowSupport  # per-address windows (anyone can multiply these)
    default_limit: str  # RATELIMIT_EVENT_DEFAULT
    # Refusals that stand until their reset time, by (key id, limit) and by address: a
    # refused spend records nothing and no process can take entries out of a window, so an
    # identity refused now stays refused until its oldest entry leaves the window, with the
    # same state (standing.py). A flood of refused requests then skips the storage.
    keys_refused: Standing[LimitState] = field(default_factory=Standing, compare=False)
    addresses_refused: Standing[LimitState] = field(default_factory=Standing, compare=False)

    def spend_key(self, key_id: str, own_limit: str | None) -> LimitState | None:
        """Spend one request of an authenticated key on the shared /event + /events bucket
        (a key refused until a later reset time is refused again without the storage)."""
        item = parsed(own_limit or self.default_limit)
        return _spend_standing(self.key_storage, item, EVENT_SCOPE, key_id, self.keys_refused)

    def refuse_failed_auth(self, address: str | None) -> Response | None:
        """Spend one failed-authentication attempt of an address; a 429 when none are left."""
        state = self._spend_failed_auth(address)
        return None if state is None else too_many(state, _FAILED_AUTH_REFUSAL)

    def refuse_failed_auth_plainly(self, address: str | None) -> PlainAnswer | None:
        """refuse_failed_auth's answer as a PlainAnswer (the same bytes, built for less: a
        flood of wrong secrets gets nothing else, as a key over its limit)."""
        state = self._spend_failed_auth(address)
        return None if state is None else plain_too_many(state, _FAILED_AUTH_REFUSAL)

    def _spend_failed_auth(self, address: str | None) -> LimitState | None:
        """Spend one attempt of the address; its state when it is refused, else None."""
        state = _spend_standing(
            self.address_storage,
            FAILED_AUTH_LIMIT,
            "failed-auth",
            address or "unknown",
            self.addresses_refused,
        )
        if state is None or state.allowed:  # a failed storage still answers these with 401
            return None
        return state


def _spend_standing(
    storage: MovingWindowSupport,
    item: RateLimitItem,
    scope: str,
    identity: str,
    refused: Standing[LimitState],
) -> LimitState | None:
    """spend, unless this identity's refusal under `item` still stands (then that state)."""
    now = time.time()
    standing = refused.get((item, identity), now)
    if standing is not None:
        return standing
    state = spend(storage, item, scope, identity)
    if state is not None and not state.allowed:
        refused.remember((item, identity), state, state.reset_time, now)
    return state


_FAILED_AUTH_REFUSAL = "Too many requests with invalid credentials from your address"


def key_limit_exceeded(state: LimitState) -> PlainAnswer:
    """The 429 answer for a key over its limit: too_many's answer, built as plainly as it can
    be, because a key that floods past its limit gets nothing else (and must cost little)."""
    return plain_too_many(state, f"Rate limit of {describe(state.item)} exceeded for this key")


def plain_too_many(state: LimitState, what: str) -> PlainAnswer:
    """too_many's answer (the same status line, headers and body) as a PlainAnswer.

    A flood gets the same answer over and over: the same state (a standing refusal) and the
    same whole seconds to wait. So it is built once for those (_built_too_many), and each
    caller gets its own copy of the header list."""
    now = time.time()
    built = _built_too_many(
        state,
        what,
        retry_after_seconds(state.reset_time, now),
        _header_wait(state.reset_time, now),
    )
    return PlainAnswer(built.status, list(built.headers), built.body)


@functools.lru_cache(maxsize=1024)
def _built_too_many(state: LimitState, what: str, wait: int, header_wait: int) -> PlainAnswer:
    """plain_too_many's answer for a state, waits as given (never handed out: copied)."""
    limit = describe(state.item)
    answer = plain_error(
        429,
        "rate_limited",
        f"{what}; retry in {wait} s.",
        extra={"limit": limit, "retry_after": wait},
    )
    answer.headers += _policy_headers(state.item, state.remaining, state.reset_time, header_wait)
    answer.headers.append(("Retry-After", str(wait)))
    return answer
