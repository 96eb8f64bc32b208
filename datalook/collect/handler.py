"""POST /collect and its CORS preflight, as one plain function of the request's parts.

`handle_collect` needs no Flask request or app context: the method, query string, headers,
body and client address in, a werkzeug Response out. The path of one browser event:
site key → per-address limit → allowed origin → body → the same validation and PII rule
as /event (event_schema) → bots and Do-Not-Track skipped → cookieless visitor id → the same
durable storage as /event (ingest) → 204.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, quote

import orjson
from flask import Flask
from limits import RateLimitItem, parse
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug import Response

from .. import event_schema, ingest
from ..apikeys import AuthenticatedKey
from ..errors import error_response
from ..extensions import db, limiter
from ..models import Site, utcnow
from ..ratelimits import check_failed_auth_budget
from . import origins, visitor
from .bots import is_bot

log = logging.getLogger(__name__)

MAX_COLLECT_BYTES = 16 * 1024
# Per client address and site (COLLECT_ADDRESS_LIMIT, default 120 per minute): far above
# what one person's page sends, far below a flood.
# sendBeacon sends a string as text/plain (no CORS preflight); fetch may say either.
MEDIA_TYPES = ("text/plain", "application/json")
_MAX_SITE_KEY = 32
# The answer's own headers that a page's fetch may read.
EXPOSED_HEADERS = "DataLook-Duplicate, DataLook-Stripped-Keys, DataLook-Ignored, Retry-After"
_PREFLIGHT_MAX_AGE = "86400"


@dataclass(frozen=True, slots=True)
class Collector:
    """What every /collect call of one app needs, resolved once (no app context per call)."""

    engine: Engine
    limiter: MovingWindowRateLimiter
    address_limit: RateLimitItem
    database_errors: tuple[type[Exception], ...]


def collector_for(app: Flask) -> Collector:
    """The app's Collector, built on first use."""
    found = app.extensions.get("datalook_collector")
    if found is None:
        with app.app_context():
            engine = db.engine
            storage: Storage = limiter.storage
        dbapi = engine.dialect.loaded_dbapi
        found = app.extensions["datalook_collector"] = Collector(
            engine,
            MovingWindowRateLimiter(storage),
            parse(app.config["COLLECT_ADDRESS_LIMIT"]),
            (dbapi.OperationalError, dbapi.InterfaceError, OperationalError, InterfaceError),
        )
    return found


@dataclass(frozen=True, slots=True)
class BrowserSite:
    """The facts about a site that a browser event needs."""

    id: int
    domain: str
    allowed_origins: str | None
    respect_dnt: bool
    first_pageview_at: datetime | None


def handle_collect(
    collector: Collector,
    method: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    client_address: str | None,
    now: datetime | None = None,
) -> Response:
    """Answer POST or OPTIONS /collect; `body` holds at most MAX_COLLECT_BYTES + 1 bytes."""
    now = now or utcnow()
    header = {name.lower(): value for name, value in headers.items()}
    site_key = _site_key(query_string)
    if isinstance(site_key, Response):
        return site_key
    address = client_address or "unknown"
    try:
        with collector.engine.connect() as connection:
            site = _site(connection, site_key) if _plausible_key(site_key) else None
            if site is None:
                # Guessing keys spends the address's failed-authentication budget (as /event).
                return check_failed_auth_budget(address) or error_response(
                    403,
                    "invalid_site_key",
                    "The site key is unknown or was regenerated; copy the snippet again.",
                )
            origin = header.get("origin")
            if not origins.is_allowed(origin, site.domain, site.allowed_origins):
                return error_response(
                    403,
                    "origin_not_allowed",
                    f"The origin {(origin or 'none')[:80]!r} may not send events for this site;"
                    " the owner can add it to the site's allowed origins.",
                    headers={"Vary": "Origin"},
                )
            # From here on the page may read every answer, errors included.
            cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
            if method == "OPTIONS":
                return _preflight(cors)
            cors["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            # Keyed by the site's id, not the key as sent: made-up keys cannot multiply
            # the limit's entries.
            answer = _over_address_limit(collector, site.id, address) or _collect(
                connection, collector, site, header, body, client_address, now
            )
    except collector.database_errors:
        return error_response(
            503,
            "unavailable",
            "The event store is busy or unavailable; nothing was stored.",
            headers={"Retry-After": "1"},
        )
    answer.headers.update(cors)
    return answer


def _site_key(query_string: str) -> str | Response:
    """The site key from `?site=`, or the 400 that names it."""
    values = parse_qs(query_string).get("site") or [""]
    key = values[0]
    if not key:
        return error_response(
            400,
            "invalid_request",
            "Send the site key as ?site=<key> (the snippet's data-site).",
            [{"field": "site", "code": "required", "message": "the site key is required"}],
        )
    return key


def _plausible_key(site_key: str) -> bool:
    """Whether a site key could exist at all (longer ones are refused without a query)."""
    return len(site_key) <= _MAX_SITE_KEY and site_key.isascii()


def _over_address_limit(collector: Collector, site_id: int, address: str) -> Response | None:
    """Spend one request of this address's budget for this site; a 429 when none is left."""
    item = collector.address_limit
    site = str(site_id)
    try:
        if collector.limiter.hit(item, "collect", site, address):
            return None
        reset_time = collector.limiter.get_window_stats(item, "collect", site, address)[0]
    except Exception:  # a failing storage must not stop the events: log, let it through
        log.exception("the rate-limit storage failed on /collect; the request goes through")
        return None
    wait = max(1, math.ceil(reset_time - time.time()))
    return error_response(
        429,
        "rate_limited",
        f"Too many events from your address for this site; retry in {wait} s.",
        headers={"Retry-After": str(wait)},
        extra={"retry_after": wait},
    )


# Built once: building the expression cost as much as running it in the profile.
_SITE_BY_KEY = select(
    Site.id, Site.domain, Site.allowed_origins, Site.respect_dnt, Site.first_pageview_at
).where(Site.site_key == bindparam("site_key"))


def _site(connection, site_key: str) -> BrowserSite | None:
    """Look a site up by its public key."""
    row = connection.execute(_SITE_BY_KEY, {"site_key": site_key}).first()
    return BrowserSite(*row) if row is not None else None


def _preflight(cors: dict[str, str]) -> Response:
    """204 to a CORS preflight from an allowed origin."""
    response = Response(status=204)
    response.headers.update(
        {
            **cors,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
        }
    )
    del response.headers["Content-Type"]
    return response


def _no_content(**headers: str) -> Response:
    """204 without a body or a Content-Type."""
    response = Response(status=204, headers=headers)
    del response.headers["Content-Type"]
    return response


def _collect(
    connection,
    collector: Collector,
    site: BrowserSite,
    header: dict[str, str],
    body: bytes,
    client_address: str | None,
    now: datetime,
) -> Response:
    """Read, validate and store one browser event of an allowed origin."""
    parsed = _read_json(header.get("content-type", ""), body)
    if isinstance(parsed, Response):
        return parsed
    event, problems = event_schema.validate(parsed, now)
    if event is None:
        return error_response(
            400, "invalid_request", "The event is not valid; see errors.", problems
        )
    user_agent = header.get("user-agent", "")
    if is_bot(user_agent):
        return _no_content(**{"DataLook-Ignored": "bot"})
    if site.respect_dnt and (header.get("dnt") == "1" or header.get("sec-gpc") == "1"):
        return _no_content(**{"DataLook-Ignored": "do-not-track"})
    if event.success_user_id is None:
        salt = visitor.daily_salt(connection, now.date())
        event.visitor_id = visitor.visitor_id(salt, site.id, client_address or "", user_agent)
    connection.commit()  # end the lookups' transaction; storage runs its own
    browser = AuthenticatedKey(id=None, key_id="", site_id=site.id, rate_limit=None)
    (duplicate,) = ingest.store(
        connection.connection,
        collector.engine.dialect,
        collector.engine.url.database,
        browser,
        [event],
        now,
    )
    if event.event_name == "pageview" and site.first_pageview_at is None and not duplicate:
        _mark_first_pageview(connection, site.id, event)
    answer = _no_content()
    if duplicate:
        answer.headers["DataLook-Duplicate"] = "true"
    if event.stripped_keys:
        # Percent-encoded like /event's header: keys may hold any character.
        keys = ", ".join(quote(key, safe="") for key in event.stripped_keys)
        answer.headers["DataLook-Stripped-Keys"] = keys
    return answer


def _mark_first_pageview(connection, site_id: int, event: event_schema.Event) -> None:
    """Remember the site's first browser pageview (once: later ones change nothing)."""
    connection.execute(
        update(Site)
        .where(Site.id == site_id, Site.first_pageview_at.is_(None))
        .values(first_pageview_at=event.occurred_at, first_pageview_path=event.page_path)
    )
    connection.commit()


def _read_json(content_type: str, body: bytes) -> object | Response:
    """Check the media type and size, then parse the body; an error Response when unusable."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        return error_response(
            415,
            "unsupported_media_type",
            "Send the event as JSON with Content-Type text/plain or application/json.",
        )
    if len(body) > MAX_COLLECT_BYTES:
        return error_response(
            413, "payload_too_large", f"The body is larger than {MAX_COLLECT_BYTES // 1024} KiB."
        )
    if not body.strip():
        return error_response(400, "invalid_json", "The request body is empty; send a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error_response(400, "invalid_json", f"The body is not valid JSON: {str(exc)[:80]}")
