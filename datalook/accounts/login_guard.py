"""Limits on guessing passwords: per account (across addresses) and per address on sign-up.

The per-address limit on the log-in form (ratelimit/limiter.py, auth_form_limit) slows one machine;
an attacker with many addresses goes around it. So failed log-ins are also counted per
account: past ACCOUNT_FAILURE_LIMIT, attempts for that email are refused before the password
is checked, whichever address they come from. The real owner is not locked out: a browser
that has logged in to the account before carries a signed "known device" cookie, and its
attempts are not held back by the account's count (only by its own address's limit). Anyone
else waits at most the window. Unknown emails are counted exactly like known ones, so the
limit tells nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib
import math
from typing import cast

from flask import current_app, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse
from limits.storage import MovingWindowSupport
from werkzeug.wrappers import Response

from ..extensions import limiter
from ..ratelimit import failures

# Failed log-ins per account, from any address.
ACCOUNT_FAILURE_LIMIT = parse("10 per 5 minutes")
# Sign-up attempts per address, on top of the log-in form's 10 per minute: each answer to a
# taken email tells that the account exists, so probing is held to 30 emails an hour.
SIGNUP_HOURLY_LIMIT = "30 per hour"
DEVICE_COOKIE = "datalook_device"
DEVICE_COOKIE_DAYS = 365
_SCOPE = "login-account"

signup_hourly_limit = limiter.limit(
    SIGNUP_HOURLY_LIMIT,
    methods=["POST"],
    key_func=get_remote_address,
    scope="signup-hourly",
    error_message="Too many sign-up attempts from your address. Please try again in an hour.",
)


def _account_key(email: str) -> str:
    """The account's storage key: a digest, so that the limit storage holds no email."""
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    return ACCOUNT_FAILURE_LIMIT.key_for(_SCOPE, digest)


def _storage() -> MovingWindowSupport:
    """The configured storage (the moving-window strategy only takes storages that keep one)."""
    return cast(MovingWindowSupport, limiter.storage)


def account_wait(email: str) -> int:
    """Seconds until this account accepts another attempt (0: now)."""
    return failures.wait_seconds(
        _storage(), ACCOUNT_FAILURE_LIMIT, _account_key(email), "the account log-in limit"
    )


def record_failure(email: str) -> None:
    """Count one failed log-in against the account."""
    failures.count_failure(
        _storage(), ACCOUNT_FAILURE_LIMIT, _account_key(email), "a failed log-in"
    )


def locked_message(wait: int) -> str:
    """What a person sees when the account's limit holds them back."""
    minutes = max(1, math.ceil(wait / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return (
        "Too many failed log-ins for this email address. "
        f"Please wait {minutes} {unit}, or log in from a browser you have used before."
    )


def _serializer() -> URLSafeTimedSerializer:
    """Signs the known-device cookie with the app's secret key."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="datalook known device")


def is_known_device(user_id: int) -> bool:
    """Whether this browser has logged in to the account before (a valid signed cookie)."""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return False
    try:
        known = _serializer().loads(value, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadSignature:
        return False
    return isinstance(known, list) and user_id in known


def remember_device(response: Response, user_id: int) -> Response:
    """Mark this browser as a known device of the account (kept with any it knew)."""
    known: list = []
    value = request.cookies.get(DEVICE_COOKIE)
    if value:
        try:
            loaded = _serializer().loads(value, max_age=DEVICE_COOKIE_DAYS * 86400)
            known = [uid for uid in loaded if isinstance(uid, int)][-4:]
        except (BadSignature, TypeError):
            known = []
    if user_id not in known:
        known.append(user_id)
    response.set_cookie(
        DEVICE_COOKIE,
        _serializer().dumps(known),
        max_age=DEVICE_COOKIE_DAYS * 86400,
        path="/login",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE") or request.is_secure),
        httponly=True,
        samesite="Lax",
    )
    return response
