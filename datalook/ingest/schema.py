"""The one description of an event: FIELD_TABLE drives validation here and the OpenAPI
schema (openapi/ingestion.py), so the two cannot drift; the size caps of a request live here too.

Validation checks the shape first (an object, no unknown fields, required fields present),
then each field's type and bounds. Every problem is reported at once, each naming its field;
client input is echoed only in short, truncated form.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ..envelope import truncate
from . import arrival_fields
from .arrival_fields import BOTH, BROWSER, SERVER, Arrival, type_name
from .pii import strip_pii

EVENT_NAMES = ("pageview", "click", "success", "custom")
# Size caps of a request body, and of a batch.
MAX_EVENT_BYTES = 64 * 1024
MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 500
MAX_PATH = 2048
MAX_NAME = 100
MAX_USER_ID = 256
MAX_VALUE = Decimal(10) ** 12
VALUE_SCALE = 10**6  # values are stored as integer millionths: exact sums on every database
_MAX_MICROS = 10**12 * VALUE_SCALE  # MAX_VALUE in millionths
MAX_PROPERTIES = 50
MAX_PROPERTY_KEY = 128
MAX_PROPERTY_STRING = 1024
MAX_FUTURE = timedelta(hours=1)
MAX_PAST = timedelta(days=7)

# C0, DEL and C1 control characters.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
QUERY_OR_FRAGMENT = re.compile(r"[?#]")


@dataclass(slots=True)
class Event:
    """A valid event, normalised for storage."""

    event_name: str
    page_path: str
    name: str | None
    success_user_id: str | None
    value_micros: int | None
    properties: dict
    stripped_keys: list[str]
    event_id: str | None
    occurred_at: datetime  # naive UTC
    visitor_id: str = field(default="")
    # Where the visitor came from, as sent (arrival_fields), and the acquisition columns
    # derived from it (ingest/arrivals.py) that are stored with the event (None: not derived,
    # stored as NULL, "(not recorded)").
    arrival: Arrival = field(default_factory=Arrival)
    acquisition: dict | None = None
    # A browser event's anonymous id (stored); a server event's visitor of the day, computed
    # from its context's address and User-Agent, that its user is linked to (never stored).
    anonymous_id: str | None = None
    joins: str | None = None
    persistent_id: str | None = None  # sent by the script on a site in persistent mode

    def as_public_dict(self) -> dict:
        """Return the normalised event as the API shows it (validate mode, live view)."""
        return {
            "event_name": self.event_name,
            "page_path": self.page_path,
            "name": self.name,
            "success_user_id": self.success_user_id,
            "success_value": format_value(self.value_micros),
            "properties": self.properties,
            "event_id": self.event_id,
            "timestamp": self.occurred_at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        }


def format_value(micros: int | None) -> float | int | None:
    """Turn stored millionths back into a JSON number (exact for the digits given)."""
    if micros is None:
        return None
    value = Decimal(micros) / VALUE_SCALE
    return int(value) if value == value.to_integral_value() else float(value)


class _Problems:
    """Collects field errors in the envelope's shape."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, field_name: str, code: str, message: str) -> None:
        """Record one problem with one field."""
        self.items.append({"field": field_name, "code": code, "message": message})


def _text(problems: _Problems, name: str, value: object, max_len: int) -> str | None:
    """Check a required-string-shaped field: type, non-empty, length, no control chars."""
    if not isinstance(value, str):
        problems.add(name, "not_a_string", f"{name} must be a string, got {type_name(value)}")
        return None
    if not value:
        problems.add(name, "empty", f"{name} must not be empty")
        return None
    if len(value) > max_len:
        problems.add(
            name, "too_long", f"{name} must be at most {max_len} characters, got {len(value)}"
        )
        return None
    if CONTROL.search(value):
        problems.add(name, "control_characters", f"{name} must not contain control characters")
        return None
    return value


def _event_name(problems: _Problems, value: object) -> str | None:
    """event_name: exactly one of the four kinds."""
    if not isinstance(value, str):
        problems.add(
            "event_name",
            "not_a_string",
            f"event_name must be a string, got {type_name(value)}",
        )
        return None
    if value not in EVENT_NAMES:
        problems.add(
            "event_name",
            "invalid_choice",
            f"event_name must be one of {', '.join(EVENT_NAMES)}; got {truncate(value)!r}",
        )
        return None
    return value


def _page_path(problems: _Problems, value: object) -> str | None:
    """page_path: an absolute path; the query string and fragment are dropped."""
    path = _text(problems, "page_path", value, MAX_PATH)
    if path is None:
        return None
    if not path.startswith("/"):
        problems.add(
            "page_path", "invalid_path", f"page_path must start with '/'; got {truncate(path)!r}"
        )
        return None
    # Query strings and fragments carry PII and would split one page into many.
    return QUERY_OR_FRAGMENT.split(path, maxsplit=1)[0]


def _user_id(problems: _Problems, value: object) -> str | None:
    """success_user_id: a string, or an integer stored as its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif not isinstance(value, str):
        problems.add(
            "success_user_id",
            "invalid_type",
            f"success_user_id must be a string or an integer, got {type_name(value)}",
        )
        return None
    return _text(problems, "success_user_id", value, MAX_USER_ID)


def _value(problems: _Problems, value: object) -> int | None:
    """success_value: a finite number, |v| ≤ 1e12, at most 6 decimals; returns millionths."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(
            "success_value",
            "not_a_number",
            f"success_value must be a number, got {type_name(value)}",
        )
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.add("success_value", "not_finite", "success_value must be a finite number")
        return None
    # repr() of a float is the shortest text that reads back the same: the client's digits.
    text = repr(value)
    whole, point, fraction = text.partition(".")
    if point and len(fraction) <= 6 and fraction.isdigit() and whole.lstrip("-").isdigit():
        # The common case (e.g. 9.99) in integers alone: the same millionths as below.
        micros = int(whole + fraction.ljust(6, "0"))
        if abs(micros) <= _MAX_MICROS:
            return micros
    exact = Decimal(value) if isinstance(value, int) else Decimal(text)
    if abs(exact) > MAX_VALUE:
        problems.add(
            "success_value", "out_of_range", "success_value must be between -1e12 and 1e12"
        )
        return None
    scaled = exact * VALUE_SCALE
    if scaled != scaled.to_integral_value():
        problems.add(
            "success_value", "too_precise", "success_value may have at most 6 decimal places"
        )
        return None
    return int(scaled)


def _properties(problems: _Problems, value: object) -> dict | None:
    """properties: a flat object of at most 50 string/number/boolean values."""
    if not isinstance(value, dict):
        problems.add(
            "properties",
            "not_an_object",
            f"properties must be an object, got {type_name(value)}",
        )
        return None
    if len(value) > MAX_PROPERTIES:
        problems.add(
            "properties",
            "too_many_keys",
            f"properties may have at most {MAX_PROPERTIES} keys, got {len(value)}",
        )
        return None
    ok = True
    for key, item in value.items():
        if isinstance(item, str | bool) and 1 <= len(key) <= MAX_PROPERTY_KEY:
            if not isinstance(item, str) or len(item) <= MAX_PROPERTY_STRING:
                continue  # the common case, decided without building the field's name
        where = f"properties.{truncate(key, 60)}"
        if not 1 <= len(key) <= MAX_PROPERTY_KEY:
            problems.add(
                where, "invalid_key", f"property keys must be 1 to {MAX_PROPERTY_KEY} characters"
            )
            ok = False
        elif isinstance(item, str):
            if len(item) > MAX_PROPERTY_STRING:
                problems.add(
                    where,
                    "too_long",
                    f"property strings must be at most {MAX_PROPERTY_STRING} characters",
                )
                ok = False
        elif isinstance(item, float) and not math.isfinite(item):
            problems.add(where, "not_finite", "property numbers must be finite")
            ok = False
        elif not isinstance(item, str | int | float | bool):
            problems.add(
                where,
                "invalid_value",
                f"property values must be a string, number or boolean, got {type_name(item)}",
            )
            ok = False
    return value if ok else None


def _event_id(problems: _Problems, value: object) -> str | None:
    """event_id: 1–64 characters of [A-Za-z0-9_-]."""
    if not isinstance(value, str) or not EVENT_ID.fullmatch(value):
        problems.add(
            "event_id",
            "invalid_format",
            "event_id must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (a UUID is ideal)",
        )
        return None
    return value


_PERSISTENT_ID = re.compile(r"[0-9a-f]{32}")


def _persistent_id(problems: _Problems, value: object) -> str | None:
    """persistent_id: 32 lower-case hex digits."""
    if not isinstance(value, str) or not _PERSISTENT_ID.fullmatch(value):
        problems.add("persistent_id", "invalid_format", "persistent_id must be 32 hex digits")
        return None
    return value


def _timestamp(problems: _Problems, value: object, now: datetime) -> datetime | None:
    """timestamp: ISO 8601 with a time zone, within 7 days back and 1 hour ahead."""
    if not isinstance(value, str):
        problems.add(
            "timestamp", "not_a_string", f"timestamp must be a string, got {type_name(value)}"
        )
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        problems.add(
            "timestamp",
            "invalid_timestamp",
            f"timestamp must be ISO 8601 like 2026-01-31T12:00:00Z; got {truncate(value)!r}",
        )
        return None
    if moment.tzinfo is None:
        problems.add(
            "timestamp", "missing_timezone", "timestamp must include a time zone (Z or +hh:mm)"
        )
        return None
    try:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. year 1 with a positive offset: before any representable UTC
        problems.add("timestamp", "too_old", "timestamp may be at most 7 days in the past")
        return None
    if moment > now + MAX_FUTURE:
        problems.add(
            "timestamp", "too_far_in_future", "timestamp may be at most 1 hour in the future"
        )
        return None
    if moment < now - MAX_PAST:
        problems.add("timestamp", "too_old", "timestamp may be at most 7 days in the past")
        return None
    return moment


_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"  # JSON Schema pattern: no control characters
_TEXT_ERRORS = ("not_a_string", "empty", "too_long", "control_characters")


@dataclass(frozen=True)
class Field:
    """One field of an event: its check, its JSON Schema, its meaning and its error codes."""

    name: str
    # Normalises a present, non-null value, or records problems and returns None.
    check: Callable[[_Problems, object, datetime], object]
    schema: Mapping[str, object]  # types and bounds, built from the constants above
    description: str
    example: object
    errors: tuple[str, ...]  # every code `check` can record for this field
    required: bool = False
    # For a conditionally required field: when it is required, and what the error says.
    required_when: Callable[[Mapping], bool] | None = None
    required_message: str = ""
    default: Callable[[datetime], object] = lambda _now: None  # when absent or null
    sent_by: str = BOTH  # arrival_fields.BROWSER: POST /collect only; SERVER: /event(s) only


FIELD_TABLE: tuple[Field, ...] = (
    Field(
        "event_name",
        lambda problems, value, _now: _event_name(problems, value),
        {"type": "string", "enum": list(EVENT_NAMES)},
        "The kind of event, exactly one of these (case-sensitive).",
        "success",
        ("not_a_string", "invalid_choice"),
        required=True,
    ),
    Field(
        "page_path",
        lambda problems, value, _now: _page_path(problems, value),
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH,
            "pattern": "^/[^\\x00-\\x1f\\x7f]*$",
        },
        "The path the event belongs to, starting with `/`; used for journeys and funnels. The "
        "query string and fragment are dropped before storage: they often carry personal data "
        "and would split one page into many.",
        "/checkout/success",
        (*_TEXT_ERRORS, "invalid_path"),
        required=True,
    ),
    Field(
        "name",
        lambda problems, value, _now: _text(problems, "name", value, MAX_NAME),
        {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_NAME, "pattern": _NO_CONTROL},
        "The success rule name. Required (non-empty) when `event_name` is `success`; optional "
        "otherwise. The first success event with a new name registers the rule for the site, "
        "within its sender's cap: the backend's live keys, browsers (POST /collect) and test "
        "keys each have their own, so none can use up another's. A name sent only with test "
        "keys is listed in no report until a live event uses it.",
        "paid-customer",
        # Decided when storing: a new name beyond its sender's cap (the second from browsers).
        (*_TEXT_ERRORS, "required", "too_many_rules", "too_many_browser_rules"),
        required_when=lambda body: body.get("event_name") == "success",
        required_message="name (the success rule name) is required when event_name is success",
    ),
    Field(
        "success_user_id",
        lambda problems, value, _now: _user_id(problems, value),
        {
            "type": ["string", "integer", "null"],
            "minLength": 1,
            "maxLength": MAX_USER_ID,
            "pattern": _NO_CONTROL,
        },
        "Your stable id of the user (recommended). An integer is stored as its decimal string. "
        "All events of a site with the same id count as one visitor; without it each event is "
        "its own anonymous visitor.",
        "user_42",
        ("invalid_type", *_TEXT_ERRORS[1:]),
    ),
    Field(
        "success_value",
        lambda problems, value, _now: _value(problems, value),
        {"type": ["number", "null"], "minimum": -int(MAX_VALUE), "maximum": int(MAX_VALUE)},
        "A numeric value such as revenue: a finite JSON number (not a string, not a boolean) "
        "with at most 6 decimal places. Stored and summed exactly as a decimal.",
        9.99,
        ("not_a_number", "not_finite", "out_of_range", "too_precise"),
    ),
    Field(
        "properties",
        lambda problems, value, _now: _properties(problems, value),
        {
            "type": ["object", "null"],
            "maxProperties": MAX_PROPERTIES,
            "propertyNames": {"minLength": 1, "maxLength": MAX_PROPERTY_KEY},
            "additionalProperties": {
                "type": ["string", "number", "boolean"],
                "maxLength": MAX_PROPERTY_STRING,
            },
        },
        "A flat object. Values are strings, finite numbers or booleans; nested objects, arrays "
        "and null are refused, naming the key. Keys that look like personal data (see the "
        "docs) are removed before storage and listed in `DataLook-Stripped-Keys`.",
        {"plan": "starter"},
        (
            "not_an_object",
            "too_many_keys",
            "invalid_key",
            "too_long",
            "not_finite",
            "invalid_value",
        ),
        default=lambda _now: {},
    ),
    Field(
        "event_id",
        lambda problems, value, _now: _event_id(problems, value),
        {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "Your id for this event (a UUID is ideal), for safe retries: a repeat of an event_id "
        "for the same site (within at least 7 days) is answered 204 with "
        "`DataLook-Duplicate: true` and stores nothing. A backend's keys (live and test) share "
        "one space of ids, browsers (POST /collect) have their own: a browser's id never makes "
        "a server event a duplicate.",
        "3f0c9a52-6f7e-4e55-9d0e-1c2b3a4d5e6f",
        ("invalid_format",),
    ),
    Field(
        "timestamp",
        _timestamp,
        {"type": ["string", "null"], "format": "date-time"},
        "When the event happened: ISO 8601 with a time zone (`Z` or `+hh:mm`), at most 1 hour "
        "in the future and 7 days in the past. Defaults to the time of receipt.",
        "2026-01-31T12:00:00Z",
        ("not_a_string", "invalid_timestamp", "missing_timezone", "too_far_in_future", "too_old"),
        default=lambda now: now,
    ),
    *(Field(**spec) for spec in arrival_fields.field_specs()),
    Field(
        "persistent_id",
        lambda problems, value, _now: _persistent_id(problems, value),
        {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$"},
        "Browser only, on a site whose owner chose persistent visitor ids: the random id the "
        "script keeps in a first-party cookie (or localStorage), 32 hex digits. On a site in "
        "the default cookieless mode it is ignored.",
        "5f0c9a526f7e4e559d0e1c2b3a4d5e6f",
        ("invalid_format",),
        sent_by=BROWSER,
    ),
)
# The fields every event has, in the order the docs and the normalised form list them.
FIELDS = tuple(f.name for f in FIELD_TABLE if f.sent_by == BOTH)
REQUIRED = tuple(f.name for f in FIELD_TABLE if f.required)
# The fields of a server event (POST /event, /events) and of a browser's (POST /collect).
SERVER_TABLE = tuple(f for f in FIELD_TABLE if f.sent_by != BROWSER)
BROWSER_TABLE = tuple(f for f in FIELD_TABLE if f.sent_by != SERVER)
KNOWN_FIELDS = frozenset(f.name for f in SERVER_TABLE)
KNOWN_BROWSER_FIELDS = frozenset(f.name for f in BROWSER_TABLE)
# Codes about the event as a whole (not one field's value), for the docs' complete list.
SHAPE_ERRORS = ("not_an_object", "unknown_field", "required")


_SORTED = {False: sorted(KNOWN_FIELDS), True: sorted(KNOWN_BROWSER_FIELDS)}
# Longer unknown names are not kept in the cache: it stays a few hundred kilobytes at most.
_CACHED_NAME_CHARS = 100


def _suggest(name: str, browser: bool = False) -> str:
    """Suggest the closest known field for a misspelt one."""
    # A client that repeats one bad body repeats its unknown names: the comparison is the
    # dearest part of refusing it, and its answer depends on the name alone.
    if len(name) <= _CACHED_NAME_CHARS:
        return _suggest_cached(name, browser)
    return _closest(name, browser)


@functools.lru_cache(maxsize=1024)
def _suggest_cached(name: str, browser: bool) -> str:
    """_closest, remembered for the last 1,024 short names."""
    return _closest(name, browser)


def _closest(name: str, browser: bool) -> str:
    """The "did you mean" part of an unknown field's message ("" when nothing is close)."""
    if not browser and name in arrival_fields.CONTEXT_KEYS:
        return f"; a server event sends it inside context (context.{name})"
    close = difflib.get_close_matches(name, _SORTED[browser], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def validate(body: object, now: datetime, browser: bool = False) -> tuple[Event | None, list[dict]]:
    """Return (event, []) for a valid payload or (None, problems); `now` is naive UTC.
    `browser`: a POST /collect body, whose fields are BROWSER_TABLE's (else SERVER_TABLE's)."""
    problems = _Problems()
    if not isinstance(body, dict):
        problems.add("", "not_an_object", f"the event must be a JSON object, got {type_name(body)}")
        return None, problems.items
    known, table = (
        (KNOWN_BROWSER_FIELDS, BROWSER_TABLE) if browser else (KNOWN_FIELDS, SERVER_TABLE)
    )
    for name in sorted(set(body) - known):
        problems.add(
            truncate(name, 60),
            "unknown_field",
            f"unknown field {truncate(name)!r}{_suggest(name, browser)}",
        )
    values: dict[str, object] = {}
    for spec in table:
        raw = body.get(spec.name)
        if spec.required and spec.name not in body:
            problems.add(spec.name, "required", f"{spec.name} is required")
            values[spec.name] = None
        elif raw is not None or (spec.required and spec.name in body):
            values[spec.name] = spec.check(problems, raw, now)
        elif spec.required_when is not None and spec.required_when(body):
            problems.add(spec.name, "required", spec.required_message)
            values[spec.name] = None
        else:  # an optional field sent as null means the same as leaving it out
            values[spec.name] = spec.default(now)

    if problems.items:
        return None, problems.items
    kept, stripped = strip_pii(values["properties"] or {})  # type: ignore[arg-type]
    user_id = values["success_user_id"]
    event = Event(
        event_name=values["event_name"],  # type: ignore[arg-type]
        page_path=values["page_path"],  # type: ignore[arg-type]
        name=values["name"],  # type: ignore[arg-type]
        success_user_id=user_id,  # type: ignore[arg-type]
        value_micros=values["success_value"],  # type: ignore[arg-type]
        properties=kept,
        stripped_keys=stripped,
        event_id=values["event_id"],  # type: ignore[arg-type]
        occurred_at=values["timestamp"],  # type: ignore[arg-type]
        arrival=arrival_fields.arrival_of(values, browser),
        persistent_id=values.get("persistent_id"),  # type: ignore[arg-type]
    )
    # Separate namespaces: a user id can never collide with an anonymous visitor.
    event.visitor_id = f"u:{user_id}" if user_id is not None else f"a:{uuid.uuid4().hex}"
    return event, []
