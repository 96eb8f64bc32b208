"""flask-limiter wiring: per-key /event limits, per-address limits, exact headers.

flask-limiter decides (moving-window strategy on the project's own storage, see
ratelimit_storage.py); this module supplies the keys and limits and writes the headers
itself, because flask-limiter's own Retry-After is truncated and can be early.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, current_app, g, render_template, request
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse

from .errors import error_response, wants_json
from .extensions import limiter
from .ratelimit_storage import resolve_storage_uri, retry_after_seconds

# Against token guessing: requests that fail authentication, per client address.
FAILED_AUTH_LIMIT = parse("60 per minute")
# Sign-up and log-in attempts, per client address.
AUTH_FORM_LIMIT = "10 per minute"
POLICY_NAME = "default"


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
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def event_limit_for_request() -> str:
    """Return the authenticated key's own limit, or the configured default."""
    return g.api_key.rate_limit or current_app.config["RATELIMIT_EVENT_DEFAULT"]


def event_limit_key() -> str:
    """Identify the authenticated key; only authenticated requests reach this."""
    return g.api_key.key_id


# One shared bucket for /event and /events: a batch counts as one request.
event_rate_limit = limiter.shared_limit(
    event_limit_for_request, scope="event-api", key_func=event_limit_key
)
auth_form_limit = limiter.limit(
    AUTH_FORM_LIMIT,
    methods=["POST"],
    key_func=get_remote_address,
    error_message="Too many attempts from your address. Please wait a minute and try again.",
)


def validate_limit(text: str) -> str:
    """Return a normalised limit string or raise ValueError with a readable message."""
    try:
        item = parse(text)
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is not a rate limit; write it like '2000 per 10 seconds'"
        ) from None
    if item.amount < 1:
        raise ValueError("a rate limit must allow at least 1 request")
    return f"{item.amount} per {item.get_expiry()} seconds"


def _seconds_until(reset_time: float) -> int:
    """Whole seconds until `reset_time`, rounded up so a client is never early."""
    return retry_after_seconds(reset_time, time.time())


def _policy_headers(item: RateLimitItem, remaining: int, reset_time: float) -> dict[str, str]:
    """Build the X-RateLimit-* and IETF RateLimit-Policy / RateLimit headers."""
    wait = max(0, math.ceil(reset_time - time.time()))
    remaining = max(0, remaining)
    return {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(math.ceil(reset_time)),
        "RateLimit-Policy": f'"{POLICY_NAME}";q={item.amount};w={item.get_expiry()}',
        "RateLimit": f'"{POLICY_NAME}";r={remaining};t={wait}',
    }


def add_rate_limit_headers(response: Response) -> Response:
    """Attach the current request's rate-limit state to an API response."""
    current = limiter.current_limit
    if current is None:
        return response
    reset_time, remaining = current.window
    response.headers.update(_policy_headers(current.limit, remaining, reset_time))
    if current.breached:
        response.headers["Retry-After"] = str(_seconds_until(reset_time))
    return response


def check_failed_auth_budget() -> Response | None:
    """Spend one failed-authentication attempt of this address; a 429 when none are left."""
    address = get_remote_address() or "unknown"
    strategy = limiter.limiter
    try:
        if strategy.hit(FAILED_AUTH_LIMIT, "failed-auth", address):
            return None
        reset_time, remaining = strategy.get_window_stats(FAILED_AUTH_LIMIT, "failed-auth", address)
    except Exception:  # the storage is down: authentication failures are still answered 401
        current_app.logger.exception("rate-limit storage failed while limiting failed auth")
        return None
    wait = _seconds_until(reset_time)
    headers = _policy_headers(FAILED_AUTH_LIMIT, remaining, reset_time)
    headers["Retry-After"] = str(wait)
    return error_response(
        429,
        "rate_limited",
        f"Too many requests with invalid credentials from your address; retry in {wait} s.",
        headers=headers,
        extra={"limit": str(FAILED_AUTH_LIMIT), "retry_after": wait},
    )


def _rate_limited(exc: RateLimitExceeded):
    """Answer a breached limit: JSON envelope for the API, a readable page for people."""
    current = limiter.current_limit
    wait = _seconds_until(current.window[0]) if current else 60
    if wants_json():
        response = error_response(
            429,
            "rate_limited",
            f"Rate limit of {exc.limit.limit} exceeded; retry in {wait} s.",
            extra={"limit": str(exc.limit.limit), "retry_after": wait},
        )
        if current is not None:
            response.headers.update(_policy_headers(current.limit, 0, current.window[0]))
        response.headers["Retry-After"] = str(wait)
        return response
    page = render_template(
        "error.html", status=429, title="Too many attempts", message=exc.description
    )
    return page, 429, {"Retry-After": str(wait)}


def is_api_request() -> bool:
    """Return whether the current request is on the ingestion API."""
    return request.blueprint == "events_api"
