"""Validate and normalise one event payload.

Shape first (an object, no unknown fields, required fields present), then each field's type
and bounds. Every problem is reported at once, each naming its field; client input is
echoed only in short, truncated form.
"""

from __future__ import annotations

import difflib
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .errors import truncate
from .pii import strip_pii

EVENT_NAMES = ("pageview", "click", "success", "custom")
REQUIRED = ("event_name", "page_path")
# Every field of an event, in the order the docs and the normalised form list them.
FIELDS = (
    "event_name",
    "page_path",
    "name",
    "success_user_id",
    "success_value",
    "properties",
    "event_id",
    "timestamp",
)
KNOWN_FIELDS = frozenset(FIELDS)
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
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")


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


def _type_name(value: object) -> str:
    """Name a JSON value's type the way a client developer thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _text(problems: _Problems, name: str, value: object, max_len: int) -> str | None:
    """Check a required-string-shaped field: type, non-empty, length, no control chars."""
    if not isinstance(value, str):
        problems.add(name, "not_a_string", f"{name} must be a string, got {_type_name(value)}")
        return None
    if not value:
        problems.add(name, "empty", f"{name} must not be empty")
        return None
    if len(value) > max_len:
        problems.add(
            name, "too_long", f"{name} must be at most {max_len} characters, got {len(value)}"
        )
        return None
    if _CONTROL.search(value):
        problems.add(name, "control_characters", f"{name} must not contain control characters")
        return None
    return value


def _event_name(problems: _Problems, value: object) -> str | None:
    """event_name: exactly one of the four kinds."""
    if not isinstance(value, str):
        problems.add(
            "event_name", "not_a_string", f"event_name must be a string, got {_type_name(value)}"
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
    return _QUERY_OR_FRAGMENT.split(path, maxsplit=1)[0]


def _user_id(problems: _Problems, value: object) -> str | None:
    """success_user_id: a string, or an integer stored as its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif not isinstance(value, str):
        problems.add(
            "success_user_id",
            "invalid_type",
            f"success_user_id must be a string or an integer, got {_type_name(value)}",
        )
        return None
    return _text(problems, "success_user_id", value, MAX_USER_ID)


def _value(problems: _Problems, value: object) -> int | None:
    """success_value: a finite number, |v| ≤ 1e12, at most 6 decimals; returns millionths."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(
            "success_value",
            "not_a_number",
            f"success_value must be a number, got {_type_name(value)}",
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
            "properties", "not_an_object", f"properties must be an object, got {_type_name(value)}"
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
                f"property values must be a string, number or boolean, got {_type_name(item)}",
            )
            ok = False
    return value if ok else None


def _event_id(problems: _Problems, value: object) -> str | None:
    """event_id: 1–64 characters of [A-Za-z0-9_-]."""
    if not isinstance(value, str) or not _EVENT_ID.fullmatch(value):
        problems.add(
            "event_id",
            "invalid_format",
            "event_id must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (a UUID is ideal)",
        )
        return None
    return value


def _timestamp(problems: _Problems, value: object, now: datetime) -> datetime | None:
    """timestamp: ISO 8601 with a time zone, within 7 days back and 1 hour ahead."""
    if not isinstance(value, str):
        problems.add(
            "timestamp", "not_a_string", f"timestamp must be a string, got {_type_name(value)}"
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


def _suggest(name: str) -> str:
    """Suggest the closest known field for a misspelt one."""
    close = difflib.get_close_matches(name, sorted(KNOWN_FIELDS), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def validate(body: object, now: datetime) -> tuple[Event | None, list[dict]]:
    """Return (event, []) for a valid payload or (None, problems); `now` is naive UTC."""
    problems = _Problems()
    if not isinstance(body, dict):
        problems.add(
            "", "not_an_object", f"the event must be a JSON object, got {_type_name(body)}"
        )
        return None, problems.items
    for name in sorted(set(body) - KNOWN_FIELDS):
        problems.add(
            truncate(name, 60), "unknown_field", f"unknown field {truncate(name)!r}{_suggest(name)}"
        )
    for name in REQUIRED:
        if name not in body:
            problems.add(name, "required", f"{name} is required")

    event_name = _event_name(problems, body["event_name"]) if "event_name" in body else None
    page_path = _page_path(problems, body["page_path"]) if "page_path" in body else None
    name = None
    if body.get("name") is not None or event_name == "success":
        if body.get("name") is None:
            problems.add(
                "name",
                "required",
                "name (the success rule name) is required when event_name is success",
            )
        else:
            name = _text(problems, "name", body["name"], MAX_NAME)
    user_id = (
        _user_id(problems, body["success_user_id"])
        if body.get("success_user_id") is not None
        else None
    )
    value = (
        _value(problems, body["success_value"]) if body.get("success_value") is not None else None
    )
    # An optional field sent as null means the same as leaving it out.
    properties = (
        _properties(problems, body["properties"]) if body.get("properties") is not None else {}
    )
    event_id = _event_id(problems, body["event_id"]) if body.get("event_id") is not None else None
    occurred_at = (
        _timestamp(problems, body["timestamp"], now) if body.get("timestamp") is not None else now
    )

    if problems.items:
        return None, problems.items
    kept, stripped = strip_pii(properties or {})
    event = Event(
        event_name=event_name,
        page_path=page_path,
        name=name,
        success_user_id=user_id,
        value_micros=value,
        properties=kept,
        stripped_keys=stripped,
        event_id=event_id,
        occurred_at=occurred_at,
    )
    # Separate namespaces: a user id can never collide with an anonymous visitor.
    event.visitor_id = f"u:{user_id}" if user_id is not None else f"a:{uuid.uuid4().hex}"
    return event, []
