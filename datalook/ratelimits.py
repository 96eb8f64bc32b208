"""flask-limiter wiring: per-key /event limits, per-address limits, exact headers.

flask-limiter decides (moving-window strategy on the project's own storage, see
ratelimit_storage.py); this module supplies the keys and limits and writes the headers
itself, because flask-limiter's own Retry-After is truncated and can be early.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from time import monotonic

from flask import Flask, Response, render_template
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.storage import Storage

from .errors import error_response, wants_json
from .extensions import limiter
from .limit_text import describe
from .mapped_window import MappedWindowStorage  # also registers the datalook+mmap storage
from .ratelimit_storage import resolve_storage_uri, retry_after_seconds

# Against token guessing: requests that fail authentication, per client address.
FAILED_AUTH_LIMIT = parse("60 per minute")
# Sign-up and log-in attempts, per client address.
AUTH_FORM_LIMIT = "10 per minute"
POLICY_NAME = "default"
# One bucket per key shared by /event and /events: a batch counts as one request.
EVENT_SCOPE = "event-api"
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Configure flask-limiter with the project's storage and the moving-window strategy."""
    app.config["RATELIMIT_STORAGE_URI"] = resolve_storage_uri(
        app.config.get("RATELIMIT_STORAGE_URI"), app.instance_path
    )
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    # We emit exact headers ourselves (flask-limiter truncates Retry-After).
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    # A broken limiter must never turn into a 500: the storage falls back itself.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    # DataLook declares no default or application-wide limits: the form limits are checked
    # by their decorators inside the view, and /event by hit_event_limit. flask-limiter's
    # app-wide before_request hook would then decide nothing, yet it was the largest single
    # cost of an ingestion request in the profile, so it is taken off.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.register_error_handler(RateLimitExceeded, _rate_limited)


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one key stands after this request: for the decision and the headers."""

    item: RateLimitItem
    allowed: bool
    reset_time: float
    remaining: int


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> RateLimitItem:
    """Parse a limit string once (limits are few and change rarely)."""
    return parse(text)


@functools.lru_cache(maxsize=4096)
def _storage_key(item: RateLimitItem, scope: str, identity: str) -> str:
    """The limit's key for one identity (limits builds it from several joined strings)."""
    return item.key_for(scope, identity)


def hit_event_limit(key_id: str, own_limit: str | None, default: str) -> LimitState | None:
    """Spend one request of an authenticated key on the shared /event + /events bucket.

    Only an authenticated key may spend its budget, which flask-limiter's view decorator
    cannot express, and the decorator's per-request limit resolution cost more than the
    whole rest of the ingestion path (see the benchmark notes). So this asks flask-limiter's
    configured storage directly, through the two calls of the limits moving-window contract.
    Returns None (the request goes through, loudly logged) if the storage fails.
    """
    return _spend(_parse(own_limit or default), EVENT_SCOPE, key_id, event_storage())


def event_storage() -> Storage:
    """Where the keys' /event windows live.

    On the embedded mapped file, a table of their own: the per-address limits (failed
    authentication, sign-up and log-in) take a slot for every client address, which anyone
    can multiply, and a full table leaves a new key unlimited. Redis and SQLite have no such
    bound, so there the keys share the one storage.
    """
    storage = limiter.storage
    if isinstance(storage, MappedWindowStorage):
        return storage.sibling("keys")
    return storage


def storages() -> list[Storage]:
    """Every rate-limit storage in use (for readiness checks)."""
    shared, keys = limiter.storage, event_storage()
    return [shared] if keys is shared else [shared, keys]


def _spend(
    item: RateLimitItem, scope: str, identity: str, storage: Storage | None = None
) -> LimitState | None:
    """Hit one limit on a storage (default: the configured one) and read where it stands;
    None if it failed.

    The same two storage calls as limits' MovingWindowRateLimiter.hit and
    get_window_stats, with the key built once.
    """
    if storage is None:
        storage = limiter.storage
    key = _storage_key(item, scope, identity)
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


def event_limit_headers(response: Response, state: LimitState | None) -> Response:
    """Attach a key's rate-limit state to an API response (Retry-After when refused).

    Works on any response whose ``headers`` can ``extend`` by (name, value) pairs: werkzeug's
    and the ingestion API's bodiless answer.
    """
    if state is not None:
        # extend, not update: no handler sets these, and appending skips a search per header.
        response.headers.extend(_policy_headers(state.item, state.remaining, state.reset_time))
        if not state.allowed:
            response.headers["Retry-After"] = str(_seconds_until(state.reset_time))
    return response


def event_limit_exceeded(state: LimitState) -> Response:
    """The 429 answer for a key over its limit."""
    return _too_many(state, f"Rate limit of {describe(state.item)} exceeded for this key")


def _too_many(state: LimitState, what: str) -> Response:
    """The 429 envelope with the limit, the wait, and every rate-limit header."""
    wait = _seconds_until(state.reset_time)
    response = error_response(
        429,
        "rate_limited",
        f"{what}; retry in {wait} s.",
        extra={"limit": describe(state.item), "retry_after": wait},
    )
    return event_limit_headers(response, state)


auth_form_limit = limiter.limit(
    AUTH_FORM_LIMIT,
    methods=["POST"],
    key_func=get_remote_address,
    error_message="Too many attempts from your address. Please wait a minute and try again.",
)


def _seconds_until(reset_time: float) -> int:
    """Whole seconds until `reset_time`, rounded up so a client is never early."""
    return retry_after_seconds(reset_time, time.time())


def _policy_headers(
    item: RateLimitItem, remaining: int, reset_time: float
) -> list[tuple[str, str]]:
    """Build the X-RateLimit-* and IETF RateLimit-Policy / RateLimit headers."""
    wait = max(0, math.ceil(reset_time - time.time()))
    remaining = max(0, remaining)
    return [
        ("X-RateLimit-Limit", str(item.amount)),
        ("X-RateLimit-Remaining", str(remaining)),
        ("X-RateLimit-Reset", str(math.ceil(reset_time))),
        ("RateLimit-Policy", f'"{POLICY_NAME}";q={item.amount};w={item.get_expiry()}'),
        ("RateLimit", f'"{POLICY_NAME}";r={remaining};t={wait}'),
    ]


def check_failed_auth_budget(address: str | None) -> Response | None:
    """Spend one failed-authentication attempt of this address; a 429 when none are left."""
    state = _spend(FAILED_AUTH_LIMIT, "failed-auth", address or "unknown")
    if state is None or state.allowed:  # a failed storage still answers these with 401
        return None
    return _too_many(state, "Too many requests with invalid credentials from your address")


def _rate_limited(exc: RateLimitExceeded):
    """Answer a breached limit: JSON envelope for the API, a readable page for people."""
    current = limiter.current_limit
    wait = _seconds_until(current.window[0]) if current else 60
    if wants_json():
        reset_time = current.window[0] if current else time.time() + wait
        state = LimitState(exc.limit.limit, False, reset_time, 0)
        return _too_many(state, f"Rate limit of {describe(exc.limit.limit)} exceeded")
    page = render_template(
        "error.html", status=429, title="Too many attempts", message=exc.description
    )
    return page, 429, {"Retry-After": str(wait)}
