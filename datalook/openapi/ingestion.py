"""The OpenAPI 3.1 description of the server ingestion API (POST /event, /events) and the
probes, with the error envelope that every machine-facing answer shares.

The event's fields, bounds and per-field error codes come from its one field table
(ingest/schema.py), the token format from tokens.py, so the description cannot drift from
the code; the error codes are listed here with their meaning, and tests check them against
every code the package can send.
"""

from __future__ import annotations

from ..ingest import schema as event_schema
from ..ingest.schema import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from ..keys import tokens
from ..snippets import render as snippets
from .common import MESSAGE, RATE_HEADERS, enum_description, error_response, header_refs, ref
from .error_codes import ERROR_CODES, FIELD_ERROR_CODES, WARNING_CODES

_EXAMPLE_EVENT = snippets.EXAMPLE_EVENT


def _event_schema(table: tuple = event_schema.SERVER_TABLE, sender: str = "") -> dict:
    """The request schema of one event, read from the event's field table (a server's, or
    a browser's)."""
    conditional = [spec.name for spec in table if spec.required_when]
    return {
        "type": "object",
        "description": (
            f"One event{sender}. `null` for an optional field means the same as leaving it "
            "out. Unknown fields are refused (`unknown_field`)."
        ),
        "required": list(event_schema.REQUIRED),
        "additionalProperties": False,
        "properties": {
            spec.name: {
                **spec.schema,
                "description": spec.description,
                "examples": [spec.example],
                # The codes an error about this field can carry (FieldErrorCode explains them).
                "x-error-codes": list(spec.errors),
            }
            for spec in table
        },
        "if": {
            "properties": {"event_name": {"const": "success"}},
            "required": ["event_name"],
        },
        "then": {
            "required": conditional,
            "properties": {name: {"type": "string"} for name in conditional},
        },
        "examples": [_EXAMPLE_EVENT],
    }


def _normalised_event_schema() -> dict:
    """The event as validate mode shows it after normalisation."""
    return {
        "type": "object",
        "description": "The event as it would be stored (query string dropped, PII removed).",
        "required": list(event_schema.FIELDS),
        "properties": {
            "event_name": {"type": "string", "enum": list(event_schema.EVENT_NAMES)},
            "page_path": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "success_user_id": {"type": ["string", "null"]},
            "success_value": {"type": ["number", "null"]},
            "properties": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "event_id": {"type": ["string", "null"]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }


def _schemas() -> dict:
    """components/schemas."""
    message = MESSAGE
    return {
        "Event": _event_schema(),
        "BrowserEvent": _event_schema(
            event_schema.BROWSER_TABLE, " from a web page (POST /collect, the browser script)"
        ),
        "EventBatch": {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_BATCH_EVENTS,
                    "items": ref("schemas", "Event"),
                    "description": (
                        "1 to 500 events. Each is validated on its own: an invalid event is "
                        "reported by its index and does not stop the others."
                    ),
                }
            },
        },
        "NormalisedEvent": _normalised_event_schema(),
        "ValidationResult": {
            "type": "object",
            "required": ["valid", "event", "warnings"],
            "properties": {
                "valid": {"const": True},
                "event": ref("schemas", "NormalisedEvent"),
                "warnings": {"type": "array", "items": ref("schemas", "Warning")},
            },
        },
        "Warning": {
            "type": "object",
            "required": ["field", "code", "message"],
            "properties": {
                "field": {"type": "string", "examples": ["properties.user_email"]},
                "code": ref("schemas", "WarningCode"),
                "message": message,
            },
        },
        "WarningCode": {
            "type": "string",
            "enum": list(WARNING_CODES),
            "description": enum_description(WARNING_CODES),
        },
        "BatchResult": {
            "type": "object",
            "required": ["accepted", "duplicates", "errors", "stripped_keys"],
            "properties": {
                "accepted": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Events newly stored.",
                },
                "duplicates": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Valid events not stored again because of their event_id.",
                },
                "errors": {
                    "type": "array",
                    "items": ref("schemas", "BatchFieldError"),
                    "description": "Problems of the invalid events; none of them was stored.",
                },
                "stripped_keys": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "keys"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "keys": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "description": "Property keys removed as personal data, per event.",
                },
            },
        },
        "FieldError": {
            "type": "object",
            "required": ["field", "code", "message"],
            "properties": {
                "field": {
                    "type": "string",
                    "description": (
                        "The field, e.g. `success_value` or `properties.plan`; "
                        '`""` for the event as a whole.'
                    ),
                },
                "code": ref("schemas", "FieldErrorCode"),
                "message": message,
            },
        },
        "BatchFieldError": {
            "allOf": [ref("schemas", "FieldError")],
            "type": "object",
            "required": ["index"],
            "properties": {
                "index": {"type": "integer", "minimum": 0, "description": "Position in events."}
            },
        },
        "FieldErrorCode": {
            "type": "string",
            "enum": list(FIELD_ERROR_CODES),
            "description": enum_description(FIELD_ERROR_CODES),
        },
        "ErrorCode": {
            "type": "string",
            "enum": list(ERROR_CODES),
            "description": enum_description(ERROR_CODES),
        },
        "Error": {
            "type": "object",
            "description": "The one error envelope of the API: the body of every error "
            "answer, whatever the endpoint.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": ref("schemas", "ErrorCode"),
                        "message": message,
                        "errors": {
                            "type": "array",
                            "items": {
                                "anyOf": [
                                    ref("schemas", "FieldError"),
                                    ref("schemas", "ParameterError"),
                                ]
                            },
                            "description": "An event or a batch: every problem of the "
                            "payload at once (FieldError). A report: its first bad query "
                            "parameter (ParameterError).",
                        },
                        "limit": {
                            "type": "string",
                            "description": "With `rate_limited`: the limit that was exceeded.",
                        },
                        "retry_after": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "With `rate_limited`: seconds to wait.",
                        },
                    },
                }
            },
            "examples": [
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "The event is not valid; see errors.",
                        "errors": [
                            {
                                "field": "success_value",
                                "code": "not_a_number",
                                "message": "success_value must be a number, got string",
                            }
                        ],
                    }
                }
            ],
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {
                    "type": "string",
                    "enum": ["ok", "degraded", "unavailable"],
                    "description": "`unavailable` (503) only when the database is "
                    "unreachable; `degraded` (200) when the rate-limit storage is, or the "
                    "report fold is down or behind: events are taken and reports answer, "
                    "only later.",
                },
                "checks": {
                    "type": "object",
                    "properties": {
                        "database": {"type": "string"},
                        "rate_limit_storage": {"type": "string"},
                        "fold": {
                            "type": "string",
                            "enum": ["ok", "behind", "down", "unknown"],
                            "description": "The report fold process of this host: `down` "
                            "without a heartbeat for 3 fold intervals (30 s at least), "
                            "`behind` with more events pending than "
                            "ANALYTICS_FOLD_BEHIND_EVENTS, `unknown` when it cannot be read.",
                        },
                    },
                },
                "fold": {
                    "type": "object",
                    "properties": {
                        "pending_events": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "description": "Events not folded yet (an estimate from ids).",
                        },
                        "last_heartbeat": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "The fold process's last tick on this host.",
                        },
                    },
                },
            },
        },
    }


def _headers() -> dict:
    """components/headers."""

    def header(description: str, schema: dict) -> dict:
        return {"description": description, "schema": schema}

    integer = {"type": "integer", "minimum": 0}
    return {
        "DataLook-Duplicate": header(
            "`true` when the event_id was already stored for this site; nothing was stored.",
            {"type": "string", "const": "true"},
        ),
        "DataLook-Stripped-Keys": header(
            "Property keys removed as personal data: comma-separated, each percent-encoded.",
            {"type": "string", "examples": ["user_email, ssnLast4"]},
        ),
        "DataLook-Visit-Not-Joined": header(
            "The event's `context.ip` and `context.user_agent` joined no visit: its UTC day is "
            "before yesterday, whose cookieless ids can no longer be computed (`too-old`; on "
            "POST /events followed by `; events=` and the indexes of those events).",
            {"type": "string", "examples": ["too-old", "too-old; events=0,3"]},
        ),
        "X-RateLimit-Limit": header("Requests allowed per window for this key.", integer),
        "X-RateLimit-Remaining": header("Requests left in the current window.", integer),
        "X-RateLimit-Reset": header(
            "Unix time (seconds, rounded up) when the oldest counted request leaves the window.",
            integer,
        ),
        "RateLimit-Policy": header(
            "The policy in the IETF draft format: quota `q` per window `w` seconds.",
            {"type": "string", "examples": ['"default";q=500;w=10']},
        ),
        "RateLimit": header(
            "The state in the IETF draft format: remaining `r`, seconds `t` until reset.",
            {"type": "string", "examples": ['"default";r=499;t=10']},
        ),
        "Retry-After": header(
            "Whole seconds to wait before retrying, rounded up (never early).",
            {"type": "integer", "minimum": 1},
        ),
        "WWW-Authenticate": header(
            "The Bearer challenge (RFC 6750).",
            {"type": "string", "examples": ['Bearer realm="DataLook", error="invalid_token"']},
        ),
    }


def _responses() -> dict:
    """components/responses shared by /event and /events."""
    return {
        "BadRequest": error_response(
            "`invalid_json` (empty or malformed body) or `invalid_request` (not a valid "
            "event or batch; `errors` names every problem at once).",
            *RATE_HEADERS,
        ),
        "Unauthorized": error_response(
            "The token is missing, malformed, unknown, revoked or expired. An unknown key "
            "and a wrong secret are indistinguishable (`invalid_token`).",
            "WWW-Authenticate",
            example={"error": {"code": "invalid_token", "message": "The token is not valid."}},
        ),
        "PayloadTooLarge": error_response(
            "`payload_too_large`: the body is over the cap (refused before it is read whole).",
            *RATE_HEADERS,
        ),
        "UnsupportedMediaType": error_response(
            "`unsupported_media_type`: send `Content-Type: application/json`.",
            *RATE_HEADERS,
        ),
        "RateLimited": error_response(
            "`rate_limited`: the key is over its limit (default 500 requests per 10 seconds, "
            "sliding window), or this address sent too many requests that failed "
            "authentication (60 per minute). Wait `Retry-After` seconds.",
            "Retry-After",
            *RATE_HEADERS,
            example={
                "error": {
                    "code": "rate_limited",
                    "message": (
                        "Rate limit of 500 per 10 seconds exceeded for this key; retry in 3 s."
                    ),
                    "limit": "500 per 10 seconds",
                    "retry_after": 3,
                }
            },
        ),
        "Unavailable": error_response(
            "`unavailable`: the database could not take the event right now; nothing was "
            "stored. Retry after `Retry-After` seconds.",
            "Retry-After",
        ),
    }


def _common_errors() -> dict:
    """The error answers of both ingestion operations."""
    return {
        "400": ref("responses", "BadRequest"),
        "401": ref("responses", "Unauthorized"),
        "413": ref("responses", "PayloadTooLarge"),
        "415": ref("responses", "UnsupportedMediaType"),
        "429": ref("responses", "RateLimited"),
        "503": ref("responses", "Unavailable"),
    }


def _post_event() -> dict:
    """POST /event."""
    return {
        "operationId": "postEvent",
        "tags": ["Ingestion"],
        "summary": "Send one event",
        "description": (
            "Authenticate, rate-limit the key, validate every field, strip personal-data "
            "property keys, deduplicate by `event_id`, commit, then answer 204. Nothing is "
            f"acknowledged that is not stored. The body is at most {MAX_EVENT_BYTES // 1024} "
            "KiB."
        ),
        "security": [{"bearerAuth": []}],
        "parameters": [
            {
                "name": "validate",
                "in": "query",
                "required": False,
                "description": (
                    "`1` (or `true`): a dry run. Every check runs (authentication included), "
                    "nothing is stored, and the answer is 200 with the normalised event."
                ),
                "schema": {"type": "string", "enum": ["1", "true"]},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": ref("schemas", "Event"),
                    "example": _EXAMPLE_EVENT,
                }
            },
        },
        "responses": {
            "200": {
                "description": "Validate mode (`?validate=1`): the event is valid; nothing stored.",
                "headers": header_refs(*RATE_HEADERS),
                "content": {"application/json": {"schema": ref("schemas", "ValidationResult")}},
            },
            "204": {
                "description": "Stored (committed durably). No body.",
                "headers": header_refs(
                    "DataLook-Duplicate",
                    "DataLook-Stripped-Keys",
                    "DataLook-Visit-Not-Joined",
                    *RATE_HEADERS,
                ),
            },
            **_common_errors(),
        },
    }


def _post_events() -> dict:
    """POST /events."""
    return {
        "operationId": "postEvents",
        "tags": ["Ingestion"],
        "summary": "Send a batch of events",
        "description": (
            f"1 to {MAX_BATCH_EVENTS} events, at most {MAX_BATCH_BYTES // (1024 * 1024)} MiB. "
            "The same authentication and per-event rules as POST /event. The valid events are "
            "stored in one transaction; invalid ones are reported by index. `event_id` "
            "duplicates are recognised within the batch and across requests. A batch counts "
            "as one request against the rate limit. 400 only when the body itself is unusable."
        ),
        "security": [{"bearerAuth": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": ref("schemas", "EventBatch"),
                    "example": {"events": [_EXAMPLE_EVENT]},
                }
            },
        },
        "responses": {
            "200": {
                "description": "Processed: the valid events are stored.",
                "headers": header_refs("DataLook-Visit-Not-Joined", *RATE_HEADERS),
                "content": {"application/json": {"schema": ref("schemas", "BatchResult")}},
            },
            **_common_errors(),
        },
    }


def _probe(operation_id: str, summary: str, schema: str, ready: bool) -> dict:
    """GET /healthz or /readyz."""
    responses: dict = {
        "200": {
            "description": "OK.",
            "content": {"application/json": {"schema": ref("schemas", schema)}},
        }
    }
    if ready:
        responses["503"] = {
            "description": "The database is unreachable.",
            "content": {"application/json": {"schema": ref("schemas", schema)}},
        }
    return {
        "operationId": operation_id,
        "tags": ["Operations"],
        "summary": summary,
        "security": [],
        "responses": responses,
    }


def paths() -> dict:
    """The paths of the server ingestion API and of the probes."""
    return {
        "/event": {"post": _post_event()},
        "/events": {"post": _post_events()},
        "/healthz": {"get": _probe("healthz", "Liveness: the process is up", "Health", False)},
        "/readyz": {
            "get": _probe(
                "readyz",
                "Readiness: the database is reachable (and the rate-limit storage, the "
                "report fold)",
                "Readiness",
                True,
            )
        },
    }


def bearer_scheme() -> dict:
    """The Bearer security scheme of the server keys."""
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": f"{tokens.PREFIX}<key_id>_<secret>",
        "description": (
            f"`Authorization: Bearer {tokens.PREFIX}<key_id>_<secret>`. key_id: "
            f"{tokens.KEY_ID_LENGTH} letters and digits; secret: "
            f"{tokens.RANDOM_LENGTH} random letters and digits followed by a "
            f"{tokens.CHECKSUM_LENGTH}-character checksum, so a mistyped token is "
            "refused as `malformed_token` at once. Created in the dashboard and "
            f"shown once. Test keys ({tokens.TEST_PREFIX}<key_id>_<secret>, same "
            "rules) store events that no report counts."
        ),
    }


def components() -> dict:
    """components/schemas, headers and responses of the ingestion API."""
    return {"schemas": _schemas(), "headers": _headers(), "responses": _responses()}
