"""flask-limiter wiring for the pages: the storage, the form limits, the 429 page.

flask-limiter decides with the moving-window strategy on the project's own storages
(window.py). The ingestion API shares the same storage objects through `api_limits`, and
spends them with rules.py.
"""

from __future__ import annotations

import time
from typing import cast

from flask import Flask, render_template, request
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits.storage import MovingWindowSupport, Storage

from ..envelope import wants_json
from ..extensions import limiter
from .limit_text import describe
from .mapped import MappedWindowStorage
from .rules import ApiLimits, LimitState, seconds_until, too_many
from .window import resolve_storage_uri

# Sign-up and log-in attempts, per client address.
AUTH_FORM_LIMIT = "10 per minute"


def init_app(app: Flask) -> None:
    """Configure flask-limiter with the project's storage and the moving-window strategy."""
    app.config["RATELIMIT_STORAGE_URI"] = resolve_storage_uri(
        app.config.get("RATELIMIT_STORAGE_URI"), app.instance_path
    )
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    # The limiter is one object for the whole process, and flask-limiter takes an app's
    # default for RATELIMIT_ENABLED from it: one app created with limits off would leave
    # every later app unlimited and on the earlier app's storage. Each app decides for itself.
    app.config.setdefault("RATELIMIT_ENABLED", True)
    # We emit exact headers ourselves (flask-limiter truncates Retry-After).
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    # A broken limiter must never turn into a 500: the storage falls back itself.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    # No default or application-wide limits are declared: the form limits are checked by
    # their decorators inside the view; the ingestion API never reaches Flask's hooks.
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def event_storage() -> Storage:
    """Where the keys' /event windows live.

    On the embedded mapped file, a table of their own: the per-address limits (failed
    authentication, sign-up and log-in) take a slot for every client address, which anyone
    can multiply, and a full table leaves a new key unlimited. Redis has no such bound, so
    there the keys share the one storage.
    """
    storage = limiter.storage
    if isinstance(storage, MappedWindowStorage):
        return storage.sibling("keys")
    return storage


def api_limits(app: Flask) -> ApiLimits:
    """The ingestion API's budgets on the storages this app's limiter uses."""
    # The moving-window strategy only accepts storages with MovingWindowSupport.
    keys, addresses = event_storage(), limiter.storage
    return ApiLimits(
        cast(MovingWindowSupport, keys),
        cast(MovingWindowSupport, addresses),
        app.config["RATELIMIT_EVENT_DEFAULT"],
    )


def storages() -> list[Storage]:
    """Every rate-limit storage in use (for readiness checks)."""
    shared, keys = limiter.storage, event_storage()
    return [shared] if keys is shared else [shared, keys]


auth_form_limit = limiter.limit(
    AUTH_FORM_LIMIT,
    methods=["POST"],
    key_func=get_remote_address,
    error_message="Too many attempts from your address. Please wait a minute and try again.",
)


def _rate_limited(exc: RateLimitExceeded):
    """Answer a breached limit: JSON envelope for the API, a readable page for people."""
    current = limiter.current_limit
    wait = seconds_until(current.window[0]) if current else 60
    if wants_json(request.path):
        reset_time = current.window[0] if current else time.time() + wait
        state = LimitState(exc.limit.limit, False, reset_time, 0)
        return too_many(state, f"Rate limit of {describe(exc.limit.limit)} exceeded")
    page = render_template(
        "error.html", status=429, title="Too many attempts", message=exc.description
    )
    return page, 429, {"Retry-After": str(wait)}
