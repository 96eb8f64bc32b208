"""Rate limits as people write them ("2000 per 10 seconds"): validate and describe."""

from __future__ import annotations

import functools
import re

from limits import RateLimitItem, parse_many

_ZERO_WINDOW = re.compile(r"(?:\bper|/)\s*0+\s*[a-z]", re.IGNORECASE)
MAX_AMOUNT = 1_000_000_000
MAX_WINDOW_SECONDS = 86_400


@functools.lru_cache(maxsize=1024)
def describe(item: RateLimitItem) -> str:
    """Say a limit the way people write it: "500 per 10 seconds" (limits are few: each is
    said once per process, as the refusals of a flood repeat it)."""
    seconds = item.get_expiry()
    return f"{item.amount} per {seconds} second{'s' if seconds != 1 else ''}"


def validate_limit(text: str) -> str:
    """Return the normalised form of exactly one sensible limit, or raise ValueError."""
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    # limits reads "per 0 seconds" as "per 1 second"; a zero-length window is nonsense.
    if _ZERO_WINDOW.search(text):
        items = []
    if not items:
        raise ValueError(f"{text[:40]!r} is not a rate limit; write it like '2000 per 10 seconds'")
    if len(items) > 1:
        raise ValueError("give exactly one rate limit, like '2000 per 10 seconds'")
    item = items[0]
    if not 1 <= item.amount <= MAX_AMOUNT:
        raise ValueError(f"a rate limit allows 1 to {MAX_AMOUNT:,} requests per window")
    if not 1 <= item.get_expiry() <= MAX_WINDOW_SECONDS:
        raise ValueError(f"a rate limit's window is 1 second to {MAX_WINDOW_SECONDS:,} seconds")
    return describe(item)
