"""POST /event and POST /events: the ingestion API for backends.

JSON in, JSON errors out; no cookies, no session, no CSRF, no CORS. The path of one event:
authenticate → rate-limit the key → read and validate the body → strip PII → deduplicate →
commit → 204.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from flask import Blueprint, Flask, Request, Response, current_app, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

from .. import event_schema, ingest
from ..apikeys import AuthenticatedKey, AuthFailure, authenticate
from ..database import HeldConnection
from ..errors import ApiError, error_response, json_response
from ..extensions import csrf, db, limiter
from ..models import utcnow
from ..ratelimits import (
    check_failed_auth_budget,
    event_limit_exceeded,
    event_limit_headers,
    hit_event_limit,
)
from ..usage import UsageCounter, counter_for

bp = Blueprint("events_api", __name__)
csrf.exempt(bp)
# Limited per key by hit_event_limit (after authentication), not by flask-limiter's hooks.
limiter.exempt(bp)

MAX_EVENT_BYTES = 64 * 1024
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 500
_LONG_DIGIT_RUN = re.compile(rb"\d{19}")


@dataclass(frozen=True, slots=True)
class Ingestion:
    """What every ingestion call of one app needs, resolved once: calls run without an app
    context (see ingest_wsgi)."""

    app: Flask
    engine: Engine
    held: HeldConnection
    counter: UsageCounter
    # Errors that mean "the database cannot take this now" (locked, down), raw or wrapped.
    database_errors: tuple[type[Exception], ...]


def ingestion_for(app: Flask) -> Ingestion:
    """The app's Ingestion, built on first use."""
    found = app.extensions.get("datalook_ingestion")
    if found is None:
        with app.app_context():
            engine = db.engine
        dbapi = engine.dialect.loaded_dbapi
        found = app.extensions["datalook_ingestion"] = Ingestion(
            app,
            engine,
            HeldConnection(engine),
            counter_for(app),
            (dbapi.OperationalError, dbapi.InterfaceError, OperationalError, InterfaceError),
        )
    return found


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated API call: what the endpoint's own step needs."""

    request: Request
    key: AuthenticatedKey
    now: datetime
    engine: Engine
    connection: Any  # the thread's held DB-API connection (database.HeldConnection)


def _handle(
    ingestion: Ingestion, req: Request, step: Callable[[Call], Response | NoContent]
) -> Response | NoContent:
    """Run one API call along the event's path, in order, in one place.

    Authenticate the Bearer token → spend one request of that key's budget → the endpoint's
    step (read, validate, store) → attach the key's rate-limit headers to whatever answer.
    """
    now = utcnow()
    engine, held, counter = ingestion.engine, ingestion.held, ingestion.counter
    try:
        connection = held.get()  # inside: a database that is down is a 503
        try:
            header = req.environ.get("HTTP_AUTHORIZATION")
            key = authenticate(connection, engine.dialect, header, now)
        except AuthFailure as failure:
            # A failed attempt spends the client address's budget, never a real key's.
            return check_failed_auth_budget(req.remote_addr) or error_response(
                401,
                failure.code,
                failure.message,
                headers={"WWW-Authenticate": _www_authenticate(failure.code)},
            )
        counter.record(key.id, now)
        default_limit = ingestion.app.config["RATELIMIT_EVENT_DEFAULT"]
        state = hit_event_limit(key.key_id, key.rate_limit, default_limit)
        if state is not None and not state.allowed:
            return event_limit_exceeded(state)
        try:
            response = step(Call(req, key, now, engine, connection))
        except ApiError as exc:
            response = exc.get_response()
        if counter.due():
            counter.flush(engine)
        return event_limit_headers(response, state)
    except ingestion.database_errors:
        held.discard()
        return _unavailable()
    finally:
        held.release()


def _www_authenticate(code: str) -> str:
    """The RFC 6750 challenge, with its error attribute mapped from our reason."""
    if code == "missing_token":
        return 'Bearer realm="DataLook"'
    error = "invalid_request" if code == "malformed_token" else "invalid_token"
    return f'Bearer realm="DataLook", error="{error}"'


def _unavailable() -> Response:
    """503: the database could not take the event; nothing was stored."""
    return error_response(
        503,
        "unavailable",
        "The event store is busy or unavailable; nothing was stored. Retry shortly.",
        headers={"Retry-After": "1"},
    )


def _read_json(req: Request, max_bytes: int) -> object:
    """Check the content type and size, then parse the body; raise ApiError when unusable."""
    environ = req.environ
    # Straight from the WSGI environ: werkzeug's parsed headers cost more than the checks.
    media_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the event as JSON with 'Content-Type: application/json'.",
        )
    length = environ.get("CONTENT_LENGTH", "")
    if length.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        # The usual case: refused from Content-Length alone, or read exactly that many bytes
        # (the server ends the stream there).
        raw = environ["wsgi.input"].read(int(length)) if int(length) <= max_bytes else None
    else:
        # A chunked body has no length: werkzeug stops reading one byte past the limit, and
        # that byte means "too large".
        req.max_content_length = max_bytes + 1
        try:
            raw = req.get_data(cache=False)
        except RequestEntityTooLarge:
            raw = None
    if raw is None or len(raw) > max_bytes:
        raise ApiError(
            413, "payload_too_large", f"The body is larger than {max_bytes // 1024} KiB."
        )
    if not raw.strip():
        raise ApiError(400, "invalid_json", "The request body is empty; send a JSON object.")
    try:
        # orjson would turn an integer beyond 64 bits into a rounded float; such bodies
        # (rare: 19 digits in a row) go to the standard parser, which keeps them exact.
        if _LONG_DIGIT_RUN.search(raw):
            parsed = json.loads(raw, parse_constant=_refuse_constant)
            # Refuse lone surrogates ("\ud800") as orjson.loads does: they cannot be stored.
            json.dumps(parsed, ensure_ascii=False).encode()
            return parsed
        return orjson.loads(raw)
    except ValueError as exc:  # orjson's JSONDecodeError and UnicodeEncodeError included
        raise ApiError(
            400, "invalid_json", f"The body is not valid JSON: {str(exc)[:80]}"
        ) from None


def _refuse_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _store(call: Call, events: list[event_schema.Event]) -> list[bool]:
    """Store events durably; the caller turns a database that cannot take them into 503."""
    return ingest.store(
        call.connection, call.engine.dialect, call.engine.url.database, call.key, events, call.now
    )


@dataclass(slots=True)
class NoContent:
    """The 204 answer of a stored event: a status and headers, no body, no Content-Type.

    Plain (name, value) pairs: the WSGI entry starts the answer from them directly, which
    costs a fraction of building a werkzeug Response (ingest_wsgi).
    """

    headers: list[tuple[str, str]] = field(default_factory=list)
    status = "204 NO CONTENT"

    def to_response(self) -> Response:
        """The same answer as a werkzeug Response (for the blueprint's own routes)."""
        response = Response(status=204, headers=self.headers)
        del response.headers["Content-Type"]
        return response


def _stripped_header(keys: list[str]) -> str:
    """List stripped keys in a header-safe form (percent-encoded, comma-separated)."""
    return ", ".join(quote(key, safe="") for key in keys)


def handle_event(ingestion: Ingestion, req: Request) -> Response | NoContent:
    """POST /event: validate and store one event; 204 once it is committed."""
    return _handle(ingestion, req, _one_event)


def handle_batch(ingestion: Ingestion, req: Request) -> Response | NoContent:
    """POST /events: store a batch of 1–500 events; valid ones in one transaction."""
    return _handle(ingestion, req, _batch)


# The URL map keeps both routes (405 with Allow for other methods, OPTIONS, and a working
# path should the app be served without ingest_wsgi); ingest_wsgi answers POSTs first.
@bp.route("/event", methods=["POST"])
def post_event() -> Response:
    """Validate and store one event; 204 once it is committed."""
    ingestion = ingestion_for(current_app._get_current_object())
    answer = handle_event(ingestion, request._get_current_object())
    return answer.to_response() if isinstance(answer, NoContent) else answer


def _one_event(call: Call) -> Response | NoContent:
    """The step of POST /event: one event in, 204 (or the dry run's 200) out."""
    body = _read_json(call.request, MAX_EVENT_BYTES)
    event, problems = event_schema.validate(body, call.now)
    if event is None:
        raise ApiError(400, "invalid_request", "The event is not valid; see errors.", problems)
    warnings = [
        {
            "field": f"properties.{key}",
            "code": "pii_stripped",
            "message": "removed: looks like personal data",
        }
        for key in event.stripped_keys
    ]
    if call.request.environ.get("QUERY_STRING") and call.request.args.get("validate") in (
        "1",
        "true",
    ):
        return json_response({"valid": True, "event": event.as_public_dict(), "warnings": warnings})
    (duplicate,) = _store(call, [event])
    response = NoContent()
    if duplicate:
        response.headers.append(("DataLook-Duplicate", "true"))
    if event.stripped_keys:
        response.headers.append(("DataLook-Stripped-Keys", _stripped_header(event.stripped_keys)))
    return response


@bp.route("/events", methods=["POST"])
def post_events() -> Response:
    """Store a batch of 1–500 events: valid ones in one transaction, errors per index."""
    return handle_batch(
        ingestion_for(current_app._get_current_object()), request._get_current_object()
    )


def _batch(call: Call) -> Response:
    """The step of POST /events: a batch in, counts and per-index errors out."""
    body = _read_json(call.request, MAX_BATCH_BYTES)
    if not isinstance(body, dict) or set(body) != {"events"}:
        raise ApiError(
            400,
            "invalid_request",
            'The body must be {"events": [ ... ]}.',
            [
                {
                    "field": "events",
                    "code": "required",
                    "message": 'send exactly one field, "events"',
                }
            ],
        )
    items = body["events"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_EVENTS:
        raise ApiError(
            400,
            "invalid_request",
            f"events must be a list of 1 to {MAX_BATCH_EVENTS} events.",
            [
                {
                    "field": "events",
                    "code": "invalid_length",
                    "message": f"1 to {MAX_BATCH_EVENTS} events",
                }
            ],
        )
    valid: list[tuple[int, event_schema.Event]] = []
    errors: list[dict] = []
    for index, item in enumerate(items):
        event, problems = event_schema.validate(item, call.now)
        if event is None:
            errors.extend({"index": index, **problem} for problem in problems)
        else:
            valid.append((index, event))
    duplicates = _store(call, [event for _, event in valid]) if valid else []
    return json_response(
        {
            "accepted": duplicates.count(False),
            "duplicates": duplicates.count(True),
            "errors": errors,
            "stripped_keys": [
                {"index": index, "keys": event.stripped_keys}
                for index, event in valid
                if event.stripped_keys
            ],
        }
    )
