"""The OpenAPI description of the browser endpoint, POST /collect and its CORS preflight.

The media types, the size cap and the headers a page may read come from ingest/collect.py;
the event itself is `BrowserEvent`: the fields of POST /event's `Event` (one field table),
with the browser's acquisition fields in place of `context`.
"""

from __future__ import annotations

from ..ingest.collect import EXPOSED_HEADERS, MAX_COLLECT_BYTES, MEDIA_TYPES
from ..ingest.storage import MAX_BROWSER_RULES_PER_SITE
from ..ratelimit.rules import FAILED_AUTH_LIMIT
from .common import error_response, header_refs, ref

_CORS = ("Access-Control-Allow-Origin", "Vary")
# Every answer a page may read carries these (`Vary` only where the origin is echoed).
_READABLE = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers")
_CORS_RULE = (
    "CORS: a page may read every answer except the refusal of its own origin. Once the "
    "site key and the origin are accepted, `Access-Control-Allow-Origin` echoes the page's "
    "origin (with `Vary: Origin`), errors included; answers given before a site is "
    "identified (no or unknown site key, key guessing, an unreadable body, a store that "
    "cannot be read) say nothing about any site and carry `*`; `origin_not_allowed` carries "
    "no grant, as the site's owner did not allow that page. Never with credentials."
)


def headers() -> dict:
    """components/headers of the browser endpoint."""

    def header(description: str, schema: dict) -> dict:
        return {"description": description, "schema": schema}

    return {
        "Access-Control-Allow-Origin": header(
            "The page's own origin, echoed once the site key and the origin are accepted; "
            "`*` on an answer given before a site is identified.",
            {"type": "string", "examples": ["https://shop.example", "*"]},
        ),
        "Access-Control-Expose-Headers": header(
            "The answer's headers that the page may read.",
            {"type": "string", "const": EXPOSED_HEADERS},
        ),
        "Access-Control-Allow-Methods": header(
            "Preflight: the method allowed.", {"type": "string", "const": "POST"}
        ),
        "Access-Control-Allow-Headers": header(
            "Preflight: the request header allowed.", {"type": "string", "const": "Content-Type"}
        ),
        "Access-Control-Max-Age": header(
            "Preflight: seconds the browser may cache this answer.",
            {"type": "string", "pattern": "^[0-9]+$", "examples": ["86400"]},
        ),
        "Vary": header(
            "`Origin`: the answer depends on the page's origin.",
            {"type": "string", "const": "Origin"},
        ),
        "DataLook-Ignored": header(
            "Why a valid event was not stored: `bot` (the User-Agent is a bot, crawler or "
            "headless browser) or `do-not-track` (the site respects Do Not Track and the "
            "browser sent `DNT: 1` or `Sec-GPC: 1`).",
            {"type": "string", "enum": ["bot", "do-not-track"]},
        ),
    }


def _site_parameter() -> dict:
    """The public site key, in the query string."""
    return {
        "name": "site",
        "in": "query",
        "required": True,
        "description": (
            "The site's public site key (the snippet's `data-site`). It can only add events "
            "to its own site, from its allowed origins; missing: 400 (`errors[].field` "
            "`site`, code `required`); unknown or regenerated: 403 `invalid_site_key`. "
            "Unknown keys spend the address's failed-authentication budget "
            f"({FAILED_AUTH_LIMIT.amount} per {FAILED_AUTH_LIMIT.get_expiry()} seconds), as "
            "wrong tokens do on POST /event."
        ),
        "schema": {"type": "string", "minLength": 1},
    }


def _origin_parameter() -> dict:
    """The Origin header browsers send."""
    return {
        "name": "Origin",
        "in": "header",
        "required": True,
        "description": (
            "The page's origin, sent by the browser. Allowed: `https://<site domain>`, "
            "`http://<site domain>`, and each origin the owner added (development servers "
            "such as `http://localhost:3000` included), compared after normalisation "
            "(scheme and host in lower case, default port dropped). A missing origin, "
            "`null`, or any other origin: 403 `origin_not_allowed`. The check keeps other "
            "web pages out, not scripts that forge headers."
        ),
        "schema": {"type": "string", "examples": ["https://shop.example"]},
    }


def _limit_text(collect_limit: str) -> str:
    """What the per-address limit is, for the 429 description."""
    return (
        f"`rate_limited`: this address sent more than {collect_limit} to this site "
        "(with `Retry-After` and `retry_after`), or, with an unknown site key, more failed "
        f"attempts than {FAILED_AUTH_LIMIT.amount} per {FAILED_AUTH_LIMIT.get_expiry()} "
        "seconds (with `Retry-After`, `limit`, `retry_after` and the rate-limit headers)."
    )


def _post(collect_limit: str) -> dict:
    """POST /collect."""
    content = {media: {"schema": ref("schemas", "BrowserEvent")} for media in MEDIA_TYPES}
    answered = (*_CORS, "Access-Control-Expose-Headers")
    return {
        "operationId": "postCollect",
        "tags": ["Browser"],
        "summary": "Send one event from a web page (the browser script)",
        "description": (
            "The browser script's endpoint, for one event of a page on an allowed origin. "
            "In order: the site key, the origin, the per-address limit, the media type "
            f"(`{'` or `'.join(MEDIA_TYPES)}`; a beacon sends `text/plain`, which needs no "
            f"preflight), the size (at most {MAX_COLLECT_BYTES // 1024} KiB), then the same "
            "field validation and personal-data rule as POST /event, with the browser's own "
            "acquisition fields (`referrer`, `utm`, `click_ids`, `screen_width`) instead of "
            "`context`: the address and User-Agent are the request's. Bots and, when the site "
            "asks for it, Do Not Track visitors are answered 204 and not stored. An event "
            "without `success_user_id` gets a cookieless visitor id: a hash of a daily "
            "rotating secret salt, the site, the client address and the User-Agent (the "
            "address is never stored). Stored durably before the 204.\n\n" + _CORS_RULE
        ),
        "security": [],
        "parameters": [_site_parameter(), _origin_parameter()],
        "requestBody": {"required": True, "content": content},
        "responses": {
            "204": {
                "description": (
                    "Stored; or recognised as a duplicate by `event_id` "
                    "(`DataLook-Duplicate: true`; browsers' ids are apart from the backend's, "
                    "so a browser's id never makes a server event a duplicate); or not stored "
                    "because the sender is a bot or asked not to be tracked "
                    "(`DataLook-Ignored`). No body."
                ),
                "headers": header_refs(
                    *answered, "DataLook-Duplicate", "DataLook-Stripped-Keys", "DataLook-Ignored"
                ),
            },
            "400": error_response(
                "`invalid_request`: no site key (field `site`; CORS `*`), or the event is "
                "not valid (`errors` names every problem, with the codes of POST /event), or "
                "a success names a new rule while the site already has "
                f"{MAX_BROWSER_RULES_PER_SITE} rules first sent from browsers (field `name`, "
                "code `too_many_browser_rules`: the browsers' own cap, which never counts "
                "toward the backend's); "
                "`invalid_json`: the body is empty or not JSON; `invalid_body`: the body "
                "could not be read (malformed chunked encoding, cut short; CORS `*`).",
                *_READABLE,
            ),
            "403": error_response(
                "`invalid_site_key` (no site has this key; CORS `*`, any page may read it) "
                "or `origin_not_allowed` (the page's origin is not allowed for the site; "
                "with `Vary: Origin` and no CORS grant: that page cannot read this answer)."
            ),
            "413": error_response(
                f"`payload_too_large`: the body is over {MAX_COLLECT_BYTES // 1024} KiB.",
                *answered,
            ),
            "415": error_response(
                f"`unsupported_media_type`: send `{'` or `'.join(MEDIA_TYPES)}`.", *answered
            ),
            "429": error_response(
                _limit_text(collect_limit) + " CORS: the page's origin for the per-address "
                "limit, `*` for key guessing.",
                "Retry-After",
                *_READABLE,
            ),
            "503": error_response(
                "`unavailable`: the event store could not take the event; nothing was "
                "stored. Retry after `Retry-After` seconds. CORS: the page's origin once it "
                "was accepted, `*` when the site could not be read.",
                "Retry-After",
                *_READABLE,
            ),
        },
    }


def _preflight(collect_limit: str) -> dict:
    """OPTIONS /collect (the CORS preflight of a fetch with Content-Type: application/json)."""
    return {
        "operationId": "preflightCollect",
        "tags": ["Browser"],
        "summary": "CORS preflight of POST /collect",
        "description": (
            "Checks the site key and the origin as POST does, then allows POST with `Content-Type`."
        ),
        "security": [],
        "parameters": [_site_parameter(), _origin_parameter()],
        "responses": {
            "204": {
                "description": "The origin may POST events for this site. No body.",
                "headers": header_refs(
                    *_CORS,
                    "Access-Control-Allow-Methods",
                    "Access-Control-Allow-Headers",
                    "Access-Control-Max-Age",
                ),
            },
            "400": error_response(
                "`invalid_request`: no site key (field `site`); CORS `*`.", *_READABLE
            ),
            "403": error_response(
                "`invalid_site_key` (CORS `*`) or `origin_not_allowed` (with `Vary: Origin`, "
                "no CORS grant). Either way the preflight fails and the browser does not "
                "send the POST."
            ),
            "429": error_response(
                "`rate_limited`: with an unknown site key, more failed attempts from this "
                f"address than {FAILED_AUTH_LIMIT.amount} per "
                f"{FAILED_AUTH_LIMIT.get_expiry()} seconds (a preflight does not spend the "
                "per-address event limit). CORS `*`.",
                "Retry-After",
                *_READABLE,
            ),
            "503": error_response(
                "`unavailable`: the database could not be read; CORS `*`.",
                "Retry-After",
                *_READABLE,
            ),
        },
    }


def paths(collect_limit: str) -> dict:
    """The browser endpoint's path; `collect_limit` is the per-address limit in force."""
    return {"/collect": {"post": _post(collect_limit), "options": _preflight(collect_limit)}}
