"""Every code the machine-facing answers use, with its meaning: the envelope's error codes,
the per-field error codes and the warnings. Tests check them against every code the
package can send; the OpenAPI description and the docs pages list them from here."""

from __future__ import annotations

from ..ingest import storage

#: Every top-level `error.code` of the envelope, with its status and meaning.
ERROR_CODES: dict[str, str] = {
    "invalid_json": "400: the body is empty, not valid JSON, or nested too deeply.",
    "invalid_body": "400: the body could not be read (malformed chunked encoding, cut short).",
    "invalid_request": "400: the JSON is not a valid event or batch; `errors` names each field. "
    "The reports (stats.json, breakdown.json, funnel.json, funnels/{id}.json, journeys.json, "
    "journeys/next.json, live.json): a bad query parameter, named in `errors`.",
    "bad_request": "400: any other malformed HTTP request.",
    "missing_token": "401: no Authorization header.",
    "malformed_token": "401: not `Bearer dl_live_<key_id>_<secret>`, or a checksum mismatch.",
    "invalid_token": "401: no such key, or the secret is wrong.",
    "revoked_token": "401: the key was revoked, or its rotation grace period has ended.",
    "wrong_key_kind": "401: a key of the wrong kind: the reports take a read key "
    "(dl_read_…), /event and /events a live or test key.",
    "unauthorized": "401: authentication failed for another reason; for the reports, "
    "not logged in (no valid session cookie).",
    "forbidden": "403: the request is not allowed.",
    "invalid_site_key": "403 (POST /collect): no site has this public site key.",
    "origin_not_allowed": "403 (POST /collect): the page's origin is not allowed for the site.",
    "not_found": "404: no such URL; for the reports also a site (or funnel) of another user.",
    "method_not_allowed": "405: the URL exists but not with this method (see `Allow`).",
    "payload_too_large": "413: the body is over the size cap.",
    "unsupported_media_type": "415: the Content-Type is not application/json (POST /collect "
    "also takes text/plain).",
    "rate_limited": "429: over the rate limit; wait `Retry-After` seconds.",
    "internal_error": "500: a bug on our side; nothing was acknowledged.",
    "unavailable": "503: the event store could not take the event; nothing was stored.",
}

#: Every `code` of an item of `errors` (one problem with one field).
FIELD_ERROR_CODES: dict[str, str] = {
    "required": "A required field is missing (`name` is required for success events).",
    "unknown_field": "A field that the API does not know; the message suggests the closest.",
    "not_an_object": 'The event (field `""`), `properties`, `context` or a `utm` is not a '
    "JSON object.",
    "not_a_string": "The field must be a string.",
    "invalid_type": "`success_user_id` must be a string or an integer.",
    "empty": "The string must not be empty.",
    "too_long": "The string is longer than its maximum.",
    "control_characters": "The string contains control characters.",
    "invalid_choice": "`event_name` is not one of the four kinds, or `click_ids` holds a name "
    "that is no ad click id.",
    "invalid_path": "`page_path` does not start with `/`.",
    "not_a_number": "`success_value` must be a JSON number.",
    "not_finite": "A number must be finite.",
    "out_of_range": "`success_value` is beyond ±1e12, or `screen_width` beyond 0 to 100000.",
    "too_precise": "`success_value` has more than 6 decimal places.",
    "too_many_keys": "`properties` has more than 50 keys.",
    "invalid_key": "A property key is empty or longer than 128 characters.",
    "invalid_value": "A property value is not a string, number or boolean.",
    "invalid_format": "`event_id` is not 1–64 characters of A–Z, a–z, 0–9, `_`, `-`.",
    "invalid_timestamp": "`timestamp` is not ISO 8601.",
    "missing_timezone": "`timestamp` has no time zone.",
    "too_far_in_future": "`timestamp` is more than 1 hour ahead.",
    "too_old": "`timestamp` is more than 7 days ago.",
    "invalid_length": "`events` must hold 1 to 500 events.",
    "invalid_url": "A `referrer` (or `context.referrer`) is not an absolute URL.",
    "invalid_ip": "`context.ip` is not an IPv4 or IPv6 address.",
    "not_an_array": "`click_ids` is not a JSON array.",
    "not_an_integer": "`screen_width` is not a whole number.",
    "too_many_rules": "A success event with a new rule `name`, and the site has "
    f"{storage.MAX_RULES_PER_SITE:,} rules from its backend already (the cap; rules first sent "
    "from browsers or only with test keys do not count toward it); with a test key, "
    f"{storage.MAX_TEST_RULES_PER_SITE:,} names sent only with test keys (their own cap). "
    "Nothing was stored for it.",
    "too_many_browser_rules": "POST /collect: a success event with a new rule `name`, and the "
    f"site has {storage.MAX_BROWSER_RULES_PER_SITE} rules first sent from browsers already "
    "(the browsers' own cap, apart from the backend's). Nothing was stored for it.",
}

#: Every `code` of a warning (the request succeeded, but something was changed).
WARNING_CODES: dict[str, str] = {
    "pii_stripped": "A property key looked like personal data and was removed.",
}
