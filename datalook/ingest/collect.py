"""POST /collect and its CORS preflight: browser events, in the ingestion app.

The path of one browser event: site key → allowed origin → per-address limit → body → the
same validation and PII rule as /event (schema) → bots and Do-Not-Track skipped →
cookieless visitor id → the same durable storage as /event (storage) → 204. The browser
rules themselves (origins, bots, the daily salt) live in datalook/browser/.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import parse_qs, quote

from sqlalchemy import bindparam, select, update
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from ..browser import origins, visitor
from ..browser.bots import bot_name, is_bot
from ..envelope import ApiError, error_response
from ..models import Site, utcnow
from ..ratelimit.rules import seconds_until, spend
from . import arrivals, links, schema, storage
from .body import parse_json
from .pipeline import Context

MAX_COLLECT_BYTES = 16 * 1024
# sendBeacon sends a string as text/plain (no CORS preflight); fetch may say either.
MEDIA_TYPES = ("text/plain", "application/json")
_MAX_SITE_KEY = 32
# The answer's own headers that a page's fetch may read.
EXPOSED_HEADERS = "DataLook-Duplicate, DataLook-Stripped-Keys, DataLook-Ignored, Retry-After"
_PREFLIGHT_MAX_AGE = "86400"
# CORS of the answers given before a site is identified (no or unknown site key, key
# guessing, an unreadable body, a store that cannot be read): they say nothing about any
# site and are the same for every caller, so any page may read them, as peers' collection
# endpoints allow. `*` never lets a page send credentials. Once the site is known its
# allowed origins decide: the page's origin echoed, or no CORS grant at all.
PUBLIC_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}


@dataclass(frozen=True, slots=True)
class BrowserSite:
    """The facts about a site that a browser event needs."""

    id: int
    domain: str
    allowed_origins: str | None
    respect_dnt: bool
    first_pageview_at: datetime | None
    visitor_ids: str = "cookieless"


def answer(context: Context, request: Request) -> Response:
    """The ingestion app's endpoint for /collect (POST, and OPTIONS for the preflight)."""
    try:
        body = request.stream.read(MAX_COLLECT_BYTES + 1) if request.method == "POST" else b""
    except Exception:
        # Whatever the server's reader raises for a malformed or cut-short body: the
        # client's request is broken, not us (as /event's reader answers).
        return error_response(
            400,
            "invalid_body",
            "The request body could not be read (malformed or incomplete).",
            headers=PUBLIC_CORS,
        )
    return handle_collect(
        context,
        request.method,
        request.query_string.decode("latin-1"),
        request.headers,
        body,
        request.remote_addr,
    )


def handle_collect(
    context: Context,
    method: str,
    query_string: str,
    headers: Mapping[str, str] | Headers,
    body: bytes,
    client_address: str | None,
    now: datetime | None = None,
) -> Response:
    """Answer POST or OPTIONS /collect from the request's parts alone; `body` holds at most
    MAX_COLLECT_BYTES + 1 bytes."""
    now = now or utcnow()
    header = {name.lower(): value for name, value in headers.items()}
    site_key = _site_key(query_string)
    if isinstance(site_key, Response):
        site_key.headers.update(PUBLIC_CORS)
        return site_key
    address = client_address or "unknown"
    cors = PUBLIC_CORS  # until the site's allowed origins can decide
    try:
        with context.engine.connect() as connection:
            site = _site(connection, site_key) if _plausible_key(site_key) else None
            if site is None:
                # Guessing keys spends the address's failed-authentication budget (as /event).
                answer = context.limits.refuse_failed_auth(address) or error_response(
                    403,
                    "invalid_site_key",
                    "The site key is unknown or was regenerated; copy the snippet again.",
                )
                answer.headers.update(cors)
                return answer
            origin = header.get("origin")
            if not origins.is_allowed(origin, site.domain, site.allowed_origins):
                # The owner did not allow this page: no CORS grant, so it cannot read this
                # answer, and a refused preflight keeps its fetch from being sent at all.
                return error_response(
                    403,
                    "origin_not_allowed",
                    f"The origin {(origin or 'none')[:80]!r} may not send events for this site;"
                    " the owner can add it to the site's allowed origins.",
                    headers={"Vary": "Origin"},
                )
            # From here on the page may read every answer, errors included.
            # is_allowed refused a missing Origin, so this is the page's own origin.
            cors = {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin"}
            if method == "OPTIONS":
                return _preflight(cors)
            cors["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            # Keyed by the site's id, not the key as sent: made-up keys cannot multiply
            # the limit's entries.
            try:
                answer = _over_address_limit(context, site.id, address) or _collect(
                    connection, context, site, header, body, client_address, now
                )
            except ApiError as exc:
                answer = exc.get_response()
    except context.database_errors:
        # With the CORS of how far the request got: the page's origin once it was accepted.
        answer = error_response(
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


def _over_address_limit(context: Context, site_id: int, address: str) -> Response | None:
    """Spend one request of this address's budget for this site; a 429 when none is left.

    A failing storage lets the event through (rules.spend logs it), as on /event.
    """
    state = spend(
        context.limits.address_storage, context.collect_limit, "collect", f"{site_id}/{address}"
    )
    if state is None or state.allowed:
        return None
    wait = seconds_until(state.reset_time)
    return error_response(
        429,
        "rate_limited",
        f"Too many events from your address for this site; retry in {wait} s.",
        headers={"Retry-After": str(wait)},
        extra={"retry_after": wait},
    )


# Built once: building the expression cost as much as running it in the profile.
_SITE_BY_KEY = select(
    Site.id,
    Site.domain,
    Site.allowed_origins,
    Site.respect_dnt,
    Site.first_pageview_at,
    Site.visitor_ids,
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
    context: Context,
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
    event, problems = schema.validate(parsed, now, browser=True)
    if event is None:
        return error_response(
            400, "invalid_request", "The event is not valid; see errors.", problems
        )
    user_agent = header.get("user-agent", "")
    if is_bot(user_agent):
        _count_bot(context, site.id, user_agent, now)
        return _no_content(**{"DataLook-Ignored": "bot"})
    if site.respect_dnt and (header.get("dnt") == "1" or header.get("sec-gpc") == "1"):
        return _no_content(**{"DataLook-Ignored": "do-not-track"})
    # Every browser event keeps its anonymous id, identified or not: a link of that id to
    # a user (made by an identified event of it, or by a server) joins its anonymous events.
    if site.visitor_ids == "persistent" and event.persistent_id is not None:
        # The owner chose persistent ids (with the visitor's consent): the script's own.
        event.anonymous_id = f"p:{event.persistent_id}"
    else:
        salt = visitor.daily_salt(connection, now.date())
        event.anonymous_id = visitor.visitor_id(salt, site.id, client_address or "", user_agent)
    if event.success_user_id is None:
        linked = links.linked_user(connection, site.id, event.anonymous_id)
        event.visitor_id = f"u:{linked}" if linked is not None else event.anonymous_id
    # The address and User-Agent are read here, never stored.
    arrival = replace(event.arrival, ip=client_address, user_agent=user_agent)
    event.acquisition = arrivals.derive(
        arrival, arrivals.own_hosts(site.domain, site.allowed_origins)
    )
    connection.commit()  # end the lookups' transaction; storage runs its own
    # A browser's event ids and new rule names are kept apart from a backend's: anyone can
    # send this (the site key is public), so it must never pre-empt a server event.
    source = storage.Source.browser(site.id)
    (outcome,) = storage.store(
        connection.connection,
        context.engine.dialect,
        context.engine.url.database,
        source,
        [event],
        now,
        grouped=context.group_writes,
    )
    if outcome == storage.TOO_MANY_RULES:
        raise ApiError(
            400,
            "invalid_request",
            "The event is not valid; see errors.",
            [storage.rule_cap(source)],
        )
    duplicate = outcome == storage.DUPLICATE
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


def _count_bot(context: Context, site_id: int, user_agent: str, now: datetime) -> None:
    """Count a request dropped as a bot for the live view; write the counts when due."""
    if context.bots is None:
        return
    context.bots.record(site_id, now.date(), bot_name(user_agent))
    if context.bots.due():
        context.bots.flush(context.engine)


def _mark_first_pageview(connection, site_id: int, event: schema.Event) -> None:
    """Remember the site's first browser pageview (once: later ones change nothing)."""
    connection.execute(
        update(Site)
        .where(Site.id == site_id, Site.first_pageview_at.is_(None))
        .values(first_pageview_at=event.occurred_at, first_pageview_path=event.page_path)
    )
    connection.commit()


def _read_json(content_type: str, body: bytes) -> object | Response:
    """Check the media type and size, then parse the body (as /event does); an error
    Response when unusable."""
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
    return parse_json(body)
