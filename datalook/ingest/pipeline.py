"""The path of one API call, in order, in one place.

authenticate the Bearer token → spend one request of that key's budget → read and validate
the body → strip PII → deduplicate → commit → 204. JSON in, JSON errors out; no cookies,
no session, no CSRF, no CORS (backends are not browsers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from limits import RateLimitItem
from sqlalchemy.engine import Engine
from werkzeug.http import parse_list_header
from werkzeug.wrappers import Request, Response

from ..browser.bot_counts import BotCounter
from ..envelope import ApiError, PlainAnswer, error_response, json_response, plain_error
from ..keys.authentication import AuthenticatedKey, AuthFailure, KnownKey, authenticate
from ..keys.wrong_secrets import WrongSecrets
from ..models import utcnow
from ..ratelimit.limit_text import describe
from ..ratelimit.rules import ApiLimits, key_limit_exceeded, with_limit_headers
from ..sql.connections import HeldConnection
from . import arrivals, links, quick, schema, storage, typed_batch
from .backend_request import BackendRequest
from .body import parse_json, read_body, read_json
from .refusals import CONTEXT_TOO_OLD, DUPLICATE, RAW_BODY, RefusalRecorder
from .usage import UsageCounter

# The answer's header when a context's address and User-Agent could join no visit: the
# event's UTC day is before yesterday, whose cookieless ids can no longer be computed.
NOT_JOINED = "DataLook-Visit-Not-Joined"
# What the path reads of a request: werkzeug's, or a backend's lighter one (its environ,
# method, path and args alike).
ApiRequest = Request | BackendRequest


@dataclass(frozen=True, slots=True)
class Context:
    """What every call of one ingestion app needs, resolved once, without an app context."""

    engine: Engine
    held: HeldConnection
    counter: UsageCounter
    limits: ApiLimits
    collect_limit: RateLimitItem  # per client address and site on /collect
    refusals: RefusalRecorder  # the live debugger's log of refused requests
    # Errors that mean "the database cannot take this now" (locked, down), raw or wrapped.
    database_errors: tuple[type[Exception], ...]
    # SQLITE_BUSY_TIMEOUT_MS in seconds when it counts from the trusted front's
    # X-Request-Start (behind a proxy, on SQLite: request_start); None otherwise.
    front_budget: float | None = None
    # Browser requests dropped as bots, counted for the live view (browser/bot_counts.py).
    bots: BotCounter | None = None
    # TRUSTED_PROXIES: the hops of X-Forwarded-For that give a backend's address (its
    # requests skip the proxy middleware: client_address).
    trusted_hops: int = 0
    # Whether a worker's concurrent writes share a commit (storage.store): only when it
    # serves requests on several threads (WEB_THREADS); one thread has nothing to group.
    group_writes: bool = False
    # Tokens found wrong, refused without a look-up while their refusal is only counted.
    wrong_secrets: WrongSecrets[KnownKey] | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated API call: what an endpoint's own step needs."""

    request: ApiRequest
    key: AuthenticatedKey
    now: datetime
    engine: Engine
    connection: Any  # the thread's held DB-API connection (sql.connections.HeldConnection)
    refusals: RefusalRecorder
    group_writes: bool = False


@dataclass(slots=True)
class NoContent:
    """The 204 answer of a stored event: a status and headers, no body, no Content-Type.

    Plain (name, value) pairs: the WSGI app starts the answer from them directly, which
    costs a fraction of building a werkzeug Response.
    """

    headers: list[tuple[str, str]] = field(default_factory=list)
    status = "204 NO CONTENT"


Answer = Response | NoContent | PlainAnswer
Step = Callable[[Call], Answer]


def handle(context: Context, request: ApiRequest, step: Step) -> Answer:
    """Run one API call along the event's path; `step` reads, validates and stores."""
    now = utcnow()
    held, counter = context.held, context.counter
    try:
        connection = held.get()  # inside: a database that is down is a 503
        try:
            header = request.environ.get("HTTP_AUTHORIZATION")
            key = authenticate(
                connection, context.engine.dialect, header, now, wrong=context.wrong_secrets
            )
        except AuthFailure as failure:
            # A failed attempt spends the client address's budget, never a real key's.
            address = client_address(request.environ, context.trusted_hops)
            limited = context.limits.refuse_failed_auth_plainly(address)
            if failure.remembered and failure.key is not None:
                context.refusals.skipped(failure.key.id)  # counted only, as the log would
            elif failure.key is not None:  # a real key id: its owner sees the refusal live
                status, code = (429, "rate_limited") if limited else (401, failure.code)
                # The owner may learn what the sender may not: the key id was right.
                told = _OWNER_NOTES.get(failure.code, failure.message)
                context.refusals.refused(failure.key, now, status, code, told)
            if limited is not None:
                return limited
            # error_response's answer, built plainly: a flood of wrong tokens gets only this.
            refused = plain_error(401, failure.code, failure.message)
            refused.headers.append(("WWW-Authenticate", _www_authenticate(failure.code)))
            return refused
        counter.record(key.id, now)
        state = context.limits.spend_key(key.key_id, key.rate_limit)
        if state is not None and not state.allowed:
            refused = key_limit_exceeded(state)
            context.refusals.refused(
                key, now, 429, "rate_limited", f"Over this key's limit of {describe(state.item)}."
            )
            return refused
        try:
            answer = step(
                Call(
                    request,
                    key,
                    now,
                    context.engine,
                    connection,
                    context.refusals,
                    context.group_writes,
                )
            )
        except ApiError as exc:
            answer = exc.get_response()
            context.refusals.refused(
                key,
                now,
                exc.code or 400,
                exc.error_code,
                exc.description or "",
                exc.errors,
                request.environ.get(RAW_BODY),
            )
        if counter.due():
            counter.flush(context.engine)
        return with_limit_headers(answer, state)
    except context.database_errors:
        held.discard()
        return _unavailable()
    finally:
        held.release()


def client_address(environ: dict, trusted_hops: int) -> str | None:
    """The client's address, as ProxyFix(x_for=trusted_hops) would set REMOTE_ADDR: the
    entry that many hops from the end of X-Forwarded-For, when there are that many."""
    if trusted_hops:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded:
            values = parse_list_header(forwarded)
            if len(values) >= trusted_hops:
                return values[-trusted_hops]
    return environ.get("REMOTE_ADDR")


_MISMATCH_NOTE = (
    "The key id is this key's, but the secret does not match: an old (rotated), mistyped or "
    "other kind's token?"
)
_MISTYPED_NOTE = (
    "The key id is this key's, but the token is mistyped or truncated (its checksum does not "
    "match): copy the whole token again."
)
# What a key's owner is told of a refusal that named the key, where it differs from the
# sender's answer.
_OWNER_NOTES = {"invalid_token": _MISMATCH_NOTE, "malformed_token": _MISTYPED_NOTE}


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


def _join_visits(call: Call, events: list[schema.Event]) -> list[int]:
    """Set the visitor of the day that each identified event's context names (its address
    and User-Agent, hashed as /collect does), for the link storage makes; the indexes of the
    events whose day is too old for that (its salt is gone)."""
    if call.key.is_test:  # a test key's events never count, nor join
        return []
    wanted = [
        (index, event)
        for index, event in enumerate(events)
        if event.success_user_id is not None
        and event.arrival.ip is not None
        and event.arrival.user_agent
    ]
    if not wanted:
        return []
    too_old = []
    with call.engine.connect() as connection:
        for index, event in wanted:
            event.joins = links.visit_of(
                connection,
                call.key.site_id,
                event.occurred_at.date(),
                call.now.date(),
                event.arrival.ip or "",
                event.arrival.user_agent or "",
            )
            if event.joins is None:
                too_old.append(index)
        connection.commit()
    return too_old


def _store(call: Call, events: list[schema.Event]) -> list[str]:
    """Store events durably, each one's outcome (storage.STORED, DUPLICATE, TOO_MANY_RULES);
    the caller turns a database that cannot take them into 503."""
    engine = call.engine
    arrivals.derive_events(
        events, call.connection, engine.dialect, engine.url.database, call.key.site_id
    )
    return storage.store(
        call.connection,
        call.engine.dialect,
        call.engine.url.database,
        storage.Source.of_key(call.key),
        events,
        call.now,
        grouped=call.group_writes,
    )


def _rule_cap(call: Call) -> dict:
    """The field error of an event whose new rule name is over this key's cap."""
    return storage.rule_cap(storage.Source.of_key(call.key))


def _stripped_header(keys: list[str]) -> str:
    """List stripped keys in a header-safe form (percent-encoded, comma-separated)."""
    return ", ".join(quote(key, safe="") for key in keys)


def one_event(call: Call) -> Answer:
    """POST /event: one event in, 204 once it is committed (or the dry run's 200)."""
    body = read_json(call.request.environ, schema.MAX_EVENT_BYTES)
    event, problems = quick.validator(call.now)(body)
    if event is None:
        raise ApiError(400, "invalid_request", "The event is not valid; see errors.", problems)
    if call.request.environ.get("QUERY_STRING") and call.request.args.get("validate") in (
        "1",
        "true",
    ):
        warnings = [
            {
                "field": f"properties.{key}",
                "code": "pii_stripped",
                "message": "removed: looks like personal data",
            }
            for key in event.stripped_keys
        ]
        return json_response({"valid": True, "event": event.as_public_dict(), "warnings": warnings})
    too_old = _join_visits(call, [event])
    (outcome,) = _store(call, [event])
    if outcome == storage.TOO_MANY_RULES:
        raise ApiError(
            400, "invalid_request", "The event is not valid; see errors.", [_rule_cap(call)]
        )
    answer = NoContent()
    if too_old:
        answer.headers.append((NOT_JOINED, links.TOO_OLD))
        _record_not_joined(call, 204, [event])
    if outcome == storage.DUPLICATE:
        answer.headers.append(("DataLook-Duplicate", "true"))
        _record_duplicates(call, 204, [event])
    if event.stripped_keys:
        answer.headers.append(("DataLook-Stripped-Keys", _stripped_header(event.stripped_keys)))
    return answer


def _record_accepted(
    call: Call,
    status: int,
    events: list[schema.Event],
    code: str,
    told: Callable[[schema.Event], str],
) -> None:
    """Show in the live view, through the log, something of accepted events (the first
    three): duplicates not stored again, or contexts that could join no visit."""
    for event in events[:3]:
        call.refusals.refused(
            call.key, call.now, status, code, told(event), raw=orjson.dumps(event.as_public_dict())
        )


def _record_duplicates(call: Call, status: int, events: list[schema.Event]) -> None:
    """Show duplicates (accepted, not stored again) in the live view."""
    _record_accepted(
        call,
        status,
        events,
        DUPLICATE,
        lambda event: f"Duplicate event_id {event.event_id}: already stored, not counted again.",
    )


def _record_not_joined(call: Call, status: int, events: list[schema.Event]) -> None:
    """Show in the live view that an accepted server event's context could not join its
    visit: its day's salt is gone (the answer's header says so too)."""
    _record_accepted(
        call,
        status,
        events,
        CONTEXT_TOO_OLD,
        lambda event: (
            f"context from {event.occurred_at.date().isoformat()} could not be "
            "joined: only today and yesterday can be."
        ),
    )


def batch(call: Call) -> Answer:
    """POST /events: 1–500 events in; valid ones stored in one transaction, errors per index."""
    raw = read_body(call.request.environ, schema.MAX_BATCH_BYTES)
    # The usual batch, every event well formed, in one pass; anything else as parsed.
    decoded = typed_batch.events(raw, call.now)
    if decoded is not None:
        events, valid = decoded, list(enumerate(decoded))
        errors: list[dict] = []
        count = len(decoded)
    else:
        count, valid, errors = _validated(parse_json(raw), call.now)
        events = [event for _, event in valid]
    too_old = _join_visits(call, events)
    outcomes = _store(call, events) if events else []
    # Each of these looks at every event only when one of them needs it (a C-level test).
    refused = (
        {
            index
            for (index, _), outcome in zip(valid, outcomes, strict=True)
            if outcome == storage.TOO_MANY_RULES
        }
        if storage.TOO_MANY_RULES in outcomes
        else set()
    )
    if refused:
        cap = _rule_cap(call)
        errors.extend({"index": index, **cap} for index in sorted(refused))
    errors.sort(key=lambda error: error["index"])
    if errors:  # a partly refused batch: the refused items are worth a record too
        call.refusals.refused(
            call.key,
            call.now,
            200,
            "invalid_events",
            f"{len({e['index'] for e in errors})} of {count} events were refused.",
            errors,
            call.request.environ.get(RAW_BODY),
        )
    if storage.DUPLICATE in outcomes:
        repeated = [
            event
            for (_, event), outcome in zip(valid, outcomes, strict=True)
            if outcome == storage.DUPLICATE
        ]
        _record_duplicates(call, 200, repeated)
    answer = json_response(
        {
            "accepted": outcomes.count(storage.STORED),
            "duplicates": outcomes.count(storage.DUPLICATE),
            "errors": errors,
            "stripped_keys": [
                {"index": index, "keys": event.stripped_keys}
                for index, event in valid
                if event.stripped_keys and index not in refused
            ],
        }
    )
    if too_old:
        indexes = ",".join(str(valid[index][0]) for index in too_old)
        answer.headers[NOT_JOINED] = f"{links.TOO_OLD}; events={indexes}"
        _record_not_joined(call, 200, [valid[index][1] for index in too_old])
    return answer


def _validated(
    body: object, now: datetime
) -> tuple[int, list[tuple[int, schema.Event]], list[dict]]:
    """A parsed batch's count of events, its valid events (with their index) and the
    problems of the others, each naming its index; ApiError when it is not a batch."""
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
    if not isinstance(items, list) or not 1 <= len(items) <= schema.MAX_BATCH_EVENTS:
        raise ApiError(
            400,
            "invalid_request",
            f"events must be a list of 1 to {schema.MAX_BATCH_EVENTS} events.",
            [
                {
                    "field": "events",
                    "code": "invalid_length",
                    "message": f"1 to {schema.MAX_BATCH_EVENTS} events",
                }
            ],
        )
    valid: list[tuple[int, schema.Event]] = []
    errors: list[dict] = []
    validate = quick.validator(now)
    for index, item in enumerate(items):
        event, problems = validate(item)
        if event is None:
            errors.extend({"index": index, **problem} for problem in problems)
        else:
            valid.append((index, event))
    return len(items), valid, errors
