"""Counting failed attempts (wrong passwords) against a subject in a moving window: how long
the subject must wait, and one more failure. A broken storage never locks anyone out."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem
from limits.storage import MovingWindowSupport

log = logging.getLogger(__name__)


def wait_seconds(storage: MovingWindowSupport, item: RateLimitItem, key: str, what: str) -> int:
    """Seconds until `key` may try again under `item` (0: now; also when the storage fails,
    logged as `what`)."""
    try:
        start, used = storage.get_moving_window(key, item.amount, item.get_expiry())
    except Exception:  # a broken storage must not lock everyone out
        log.exception("%s could not be read; attempt allowed", what)
        return 0
    if used < item.amount:
        return 0
    return max(1, math.ceil(start + item.get_expiry() - time.time()))


def count_failure(storage: MovingWindowSupport, item: RateLimitItem, key: str, what: str) -> None:
    """Count one failed attempt of `key` under `item` (a failing storage is logged as `what`)."""
    try:
        storage.acquire_entry(key, item.amount, item.get_expiry())
    except Exception:
        log.exception("%s could not be counted", what)
