"""The common, well-formed server event validated in one pass, without the field table.

schema.validate walks FIELD_TABLE for every event: a lookup, a lambda and a branch per field,
whether the field was sent or not. A batch of 100 events spent most of its validation there.
This path decides each field of a usual event directly, and gives up (Refused) at the first
value that is not plainly valid; schema.validate then decides that event, and it alone
words every error. So this path can only ever accept what schema.validate accepts, with
the same normalised Event: it has no errors of its own.

Checks.event decides an event from its fields' values, however they were read: from a
parsed object here (validator), or from a batch decoded straight into structs
(typed_batch.py).
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
_isfinite = math.isfinite


class Refused(Exception):
    """This path does not decide the event (schema.validate does)."""


def _text(value: object, limit: int) -> str:
    """A non-empty string of at most `limit` characters without control characters."""
    if type(value) is not str or not value or len(value) > limit:
        raise Refused
    # Printable ASCII has no control character: the regular expression only for the rest.
    if not (value.isascii() and value.isprintable()) and CONTROL.search(value):
        raise Refused
    return value


def _micros(value: object) -> int:
    """success_value in millionths: a whole number, or a float of at most 6 decimals."""
    if type(value) is int:
        if -_MAX_WHOLE <= value <= _MAX_WHOLE:
            return value * VALUE_SCALE
        raise Refused
    if type(value) is float and _isfinite(value):
        # schema._value's own common case, to the letter: repr is the client's digits.
        whole, point, fraction = repr(value).partition(".")
        if point and len(fraction) <= 6 and fraction.isdigit() and whole.lstrip("-").isdigit():
            micros = int(whole + fraction.ljust(6, "0"))
            if abs(micros) <= _MAX_MICROS:
                return micros
    raise Refused


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
        raise Refused
    return arrival


class Checks:
    """The checks of one request's events, received at `now` (naive UTC).

    A batch repeats its names, paths, amounts, property keys and values: each is judged
    once per request here (never kept beyond it).
    """

    __slots__ = ("now", "earliest", "latest", "texts", "micros", "keys", "values")

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.earliest, self.latest = now - MAX_PAST, now + MAX_FUTURE
        self.texts: set[tuple[str, int]] = set()
        self.micros: dict[float, int] = {}
        self.keys: dict[str, bool] = {}  # property key -> is it PII
        self.values: dict[str, bool] = {}  # property string -> is it PII

    def text(self, value: object, limit: int) -> str:
        """_text, once per distinct string and limit of the request."""
        if type(value) is not str:
            raise Refused
        if (value, limit) not in self.texts:
            self.texts.add((_text(value, limit), limit))
        return value

    def amount(self, value: object) -> int:
        """_micros, once per distinct float of the request."""
        if type(value) is float:
            found = self.micros.get(value)
            if found is None:
                found = self.micros[value] = _micros(value)
            return found
        return _micros(value)

    def properties(self, value: object) -> tuple[dict, list[str]]:
        """A flat object of at most MAX_PROPERTIES keys, each value a string, number or
        boolean within bounds; without the keys that pii.strip_pii strips, and those keys."""
        if type(value) is not dict or len(value) > MAX_PROPERTIES:
            raise Refused
        keys, values = self.keys, self.values
        stripped: list[str] = []
        for key, item in value.items():
            pii = keys.get(key)
            if pii is None:
                if not 0 < len(key) <= MAX_PROPERTY_KEY:
                    raise Refused
                pii = keys[key] = is_pii_key(key)
            kind = type(item)
            if kind is str:
                found = values.get(item)
                if found is None:
                    if len(item) > MAX_PROPERTY_STRING:
                        raise Refused
                    found = values[item] = is_pii_value(item)
                pii = pii or found
            elif kind is float:
                if not _isfinite(item):
                    raise Refused
            elif kind is not int and kind is not bool:
                raise Refused
            if pii:
                stripped.append(key)
        if not stripped:
            return value, stripped
        return {k: v for k, v in value.items() if k not in stripped}, stripped

    def moment(self, stamp: object) -> datetime:
        """A timestamp with its zone, within the window, as naive UTC."""
        if type(stamp) is not str:
            raise Refused
        try:
            moment = datetime.fromisoformat(stamp)
            if moment.tzinfo is None:
                raise Refused
            occurred_at = moment.astimezone(UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            raise Refused from None
        if not self.earliest <= occurred_at <= self.latest:
            raise Refused
        return occurred_at

    def event(
        self,
        event_name: object,
        page_path: object,
        name: object,
        user_id: object,
        value: object,
        properties: object,
        event_id: object,
        stamp: object,
        context: object,
    ) -> Event:
        """The normalised event of these field values (None: absent or null), or Refused
        at the first doubt."""
        if type(event_name) is not str or event_name not in _EVENT_NAMES:
            raise Refused
        if type(page_path) is not str or not page_path.startswith("/"):
            raise Refused
        path = self.text(page_path, MAX_PATH)
        if "?" in path or "#" in path:
            path = QUERY_OR_FRAGMENT.split(path, maxsplit=1)[0]
        if name is not None:
            name = self.text(name, MAX_NAME)
        elif event_name == "success":
            raise Refused  # the rule name is required
        if user_id is not None:
            user_id = self.text(str(user_id) if type(user_id) is int else user_id, MAX_USER_ID)
        micros = self.amount(value) if value is not None else None
        kept: dict
        stripped: list[str]
        if properties is None:
            kept, stripped = {}, []
        else:
            kept, stripped = self.properties(properties)
        if event_id is not None and (type(event_id) is not str or not EVENT_ID.fullmatch(event_id)):
            raise Refused
        occurred_at = self.now if stamp is None else self.moment(stamp)
        event = Event(
            event_name,
            path,
            name,
            user_id,
            micros,
            kept,
            stripped,
            event_id,
            occurred_at,
            # As schema.validate names them: a user's own id, else a new anonymous one.
            "u:" + user_id if user_id is not None else "a:" + uuid.uuid4().hex,
            _context(context) if context is not None else _NO_ARRIVAL,
        )
        return event


def validator(now: datetime) -> Callable[[object], tuple[Event | None, list[dict]]]:
    """schema.validate for server events received at `now` (naive UTC), in one pass for
    the usual event: (event, []) or (None, problems), exactly as schema.validate answers."""
    checks = Checks(now)
    event = checks.event

    def validate_one(body: object) -> tuple[Event | None, list[dict]]:
        """One event of the request."""
        try:
            if type(body) is not dict or not body.keys() <= KNOWN_FIELDS:
                raise Refused
            get = body.get
            return event(
                get("event_name"),
                get("page_path"),
                get("name"),
                get("success_user_id"),
                get("success_value"),
                get("properties"),
                get("event_id"),
                get("timestamp"),
                get("context"),
            ), []
        except Refused:
            return validate(body, now)

    return validate_one
