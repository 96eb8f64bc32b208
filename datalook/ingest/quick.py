"""The common, well-formed server event validated in one pass, without the field table.

schema.validate walks FIELD_TABLE for every event: a lookup, a lambda and a branch per field,
whether the field was sent or not. A batch of 100 events spent most of its validation there.
This path decides each field of a usual event directly, and gives up (None) at the first
value that is not plainly valid; schema.validate then decides that event, and it alone
words every error. So this path can only ever accept what schema.validate accepts, with
the same normalised Event: it has no errors of its own.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from .arrival_fields import Arrival, check_context
from .pii import is_pii_key, is_pii_value
from .schema import (
    CONTROL,
    EVENT_ID,
    EVENT_NAMES,
    KNOWN_FIELDS,
    MAX_FUTURE,
    MAX_NAME,
    MAX_PAST,
    MAX_PATH,
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY,
    MAX_PROPERTY_STRING,
    MAX_USER_ID,
    MAX_VALUE,
    QUERY_OR_FRAGMENT,
    VALUE_SCALE,
    Event,
    validate,
)

_EVENT_NAMES = frozenset(EVENT_NAMES)
_MAX_WHOLE = int(MAX_VALUE)
_MAX_MICROS = _MAX_WHOLE * VALUE_SCALE
# No arrival said: one shared, immutable value for every event without a context.
_NO_ARRIVAL = Arrival()


class _Refused(Exception):
    """This path does not decide the event (schema.validate does)."""


class _Seen:
    """What one request's events have shown valid so far: a batch repeats its names, paths,
    amounts and property values, and each is then checked once per request (never kept
    beyond it)."""

    __slots__ = ("texts", "micros", "pii")

    def __init__(self) -> None:
        self.texts: set[tuple[str, int]] = set()
        self.micros: dict[float, int] = {}
        self.pii: dict[str, bool] = {}


def _text(value: object, limit: int, seen: _Seen) -> str:
    """A non-empty string of at most `limit` characters without control characters."""
    if type(value) is not str:
        raise _Refused
    if (value, limit) in seen.texts:
        return value
    if not value or len(value) > limit or CONTROL.search(value):
        raise _Refused
    seen.texts.add((value, limit))
    return value


def _amount(value: object, seen: _Seen) -> int:
    """_micros, once per distinct float of the request."""
    if type(value) is float:
        found = seen.micros.get(value)
        if found is None:
            found = seen.micros[value] = _micros(value)
        return found
    return _micros(value)


def _micros(value: object) -> int:
    """success_value in millionths: a whole number, or a float of at most 6 decimals."""
    if type(value) is int:
        if -_MAX_WHOLE <= value <= _MAX_WHOLE:
            return value * VALUE_SCALE
        raise _Refused
    if type(value) is float and math.isfinite(value):
        # schema._value's own common case, to the letter: repr is the client's digits.
        whole, point, fraction = repr(value).partition(".")
        if point and len(fraction) <= 6 and fraction.isdigit() and whole.lstrip("-").isdigit():
            micros = int(whole + fraction.ljust(6, "0"))
            if abs(micros) <= _MAX_MICROS:
                return micros
    raise _Refused


def _properties(value: object) -> dict:
    """A flat object of at most MAX_PROPERTIES keys, each value a string, number or
    boolean within bounds."""
    if type(value) is not dict or len(value) > MAX_PROPERTIES:
        raise _Refused
    for key, item in value.items():
        if not 0 < len(key) <= MAX_PROPERTY_KEY:
            raise _Refused
        kind = type(item)
        if kind is str:
            if len(item) > MAX_PROPERTY_STRING:
                raise _Refused
        elif kind is float:
            if not math.isfinite(item):
                raise _Refused
        elif kind is not int and kind is not bool:
            raise _Refused
    return value


class _Collected:
    """Whether a check recorded any problem (its words are schema.validate's to give)."""

    __slots__ = ("any",)

    def __init__(self) -> None:
        self.any = False

    def add(self, field_name: str, code: str, message: str) -> None:
        """Note that there was a problem."""
        self.any = True


def _context(value: object) -> Arrival:
    """A context that arrival_fields accepts as it is, else refused here."""
    problems = _Collected()
    arrival = check_context(problems, value)
    if problems.any or arrival is None:
        raise _Refused
    return arrival


def _strip(properties: dict, seen: _Seen) -> tuple[dict, list[str]]:
    """pii.strip_pii, each distinct string value judged once per request."""
    stripped = []
    for key, value in properties.items():
        if is_pii_key(key):
            stripped.append(key)
        elif type(value) is str:
            found = seen.pii.get(value)
            if found is None:
                found = seen.pii[value] = is_pii_value(value)
            if found:
                stripped.append(key)
        elif is_pii_value(value):
            stripped.append(key)
    if not stripped:
        return properties, []
    return {k: v for k, v in properties.items() if k not in stripped}, stripped


def _event(body: object, now: datetime, earliest: datetime, latest: datetime, seen: _Seen) -> Event:
    """The normalised event of a plainly valid body; _Refused at the first doubt."""
    if type(body) is not dict or not body.keys() <= KNOWN_FIELDS:
        raise _Refused
    get = body.get
    event_name = get("event_name")
    if type(event_name) is not str or event_name not in _EVENT_NAMES:
        raise _Refused
    path = get("page_path")
    if type(path) is not str or not path.startswith("/"):
        raise _Refused
    path = QUERY_OR_FRAGMENT.split(_text(path, MAX_PATH, seen), maxsplit=1)[0]
    name = get("name")
    if name is not None:
        name = _text(name, MAX_NAME, seen)
    elif event_name == "success":
        raise _Refused  # the rule name is required
    user_id = get("success_user_id")
    if user_id is not None:
        user_id = _text(str(user_id) if type(user_id) is int else user_id, MAX_USER_ID, seen)
    value = get("success_value")
    micros = _amount(value, seen) if value is not None else None
    properties = get("properties")
    properties = _properties(properties) if properties is not None else {}
    event_id = get("event_id")
    if event_id is not None and (type(event_id) is not str or not EVENT_ID.fullmatch(event_id)):
        raise _Refused
    stamp = get("timestamp")
    if stamp is None:
        occurred_at = now
    else:
        if type(stamp) is not str:
            raise _Refused
        try:
            moment = datetime.fromisoformat(stamp)
            if moment.tzinfo is None:
                raise _Refused
            occurred_at = moment.astimezone(UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            raise _Refused from None
        if not earliest <= occurred_at <= latest:
            raise _Refused
    context = get("context")
    arrival = _context(context) if context is not None else _NO_ARRIVAL
    kept, stripped = _strip(properties, seen)
    event = Event(
        event_name=event_name,
        page_path=path,
        name=name,
        success_user_id=user_id,
        value_micros=micros,
        properties=kept,
        stripped_keys=stripped,
        event_id=event_id,
        occurred_at=occurred_at,
        arrival=arrival,
    )
    # As schema.validate names them: a user's own id, else a new anonymous one.
    event.visitor_id = f"u:{user_id}" if user_id is not None else f"a:{uuid.uuid4().hex}"
    return event


def validator(now: datetime) -> Callable[[object], tuple[Event | None, list[dict]]]:
    """schema.validate for server events received at `now` (naive UTC), in one pass for
    the usual event: (event, []) or (None, problems), exactly as schema.validate answers."""
    earliest, latest = now - MAX_PAST, now + MAX_FUTURE
    seen = _Seen()

    def validate_one(body: object) -> tuple[Event | None, list[dict]]:
        """One event of the request."""
        try:
            return _event(body, now, earliest, latest, seen), []
        except _Refused:
            return validate(body, now)

    return validate_one
