"""How long a request waited before this process began to serve it, from X-Request-Start.

SQLITE_BUSY_TIMEOUT_MS bounds an event's wait from the moment the front (deploy/nginx.conf)
has the whole request, not from the moment a worker takes it: behind workers that are busy
waiting for a locked database, a request may queue for a while first. The front stamps
each request it passes on with ``X-Request-Start: t=<seconds since the epoch>`` (nginx's
``$msec``, replacing any such header the client sent), and the ingestion app subtracts the
time since then from the request's budget.

Only a front the app trusts (TRUSTED_PROXIES, which scripts/front.sh sets) is asked, and
what it says is clamped to the budget: a missing or unreadable header means no time waited,
a time in the future means none either, and one far in the past means the whole budget. A
request's header only ever shortens its own budget, never lengthens it, and never touches
another request's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ENVIRON_KEY = "HTTP_X_REQUEST_START"
# t=<seconds>[.<fraction>], as nginx's "t=${msec}" writes it (milliseconds).
_STAMP = re.compile(r"\A\s*t=(\d{1,12}(?:\.\d{1,9})?)\s*\Z")


def waited(value: str | None, now: float, budget: float) -> float:
    """Seconds from the front's stamp `value` to `now` (time.time()), within [0, budget]."""
    if not value:
        return 0.0
    match = _STAMP.match(value)
    if match is None:
        return 0.0
    return min(max(now - float(match.group(1)), 0.0), budget)


def deadline(environ: Mapping[str, object], budget: float, now: float, clock: float) -> float:
    """The request's write deadline on the monotonic `clock` reading taken at `now`: its
    budget less the time it waited since the front stamped it."""
    stamp = environ.get(ENVIRON_KEY)
    return clock + budget - waited(stamp if isinstance(stamp, str) else None, now, budget)
