"""A POST /events body of well-formed events, decoded and validated in one pass.

The usual path parses the body into dicts (body.parse_json: orjson, or the standard parser
when a run of 19 digits may be an integer beyond 64 bits, which needs a scan of the whole
body), then validates each event alone (quick.validator). Here msgspec decodes the raw body
straight into light structs, one per event, refusing in C any shape but
{"events": [objects of known fields]}; its integers are exact at any size and its floats
the same doubles, and it refuses what orjson refuses (malformed JSON, NaN, numbers beyond
a double, lone surrogates, invalid UTF-8). quick.Checks then decides each event's values.

At the first doubt (the decoder's, or a value that quick would not decide) the answer is
None and the body takes the usual path, which words every error: so this path accepts only
bodies that the usual path accepts whole, with the same events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .quick import Checks, Refused
from .schema import MAX_BATCH_EVENTS, Event


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A server event's fields as sent (schema.KNOWN_FIELDS, each value as JSON has it: quick
    judges them); the two required ones must be present. Not tracked by the garbage collector:
    decoded JSON holds no reference cycle."""

    event_name: Any
    page_path: Any
    name: Any = None
    success_user_id: Any = None
    success_value: Any = None
    properties: Any = None
    event_id: Any = None
    timestamp: Any = None
    context: Any = None


class _Batch(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The body: exactly one field, "events", a list of event objects."""

    events: list[_Event]


_DECODER = msgspec.json.Decoder(_Batch)


def decoded(raw: bytes) -> list[_Event] | None:
    """The body's events as structs, or None when it is not plainly a batch of 1 to
    MAX_BATCH_EVENTS objects of known fields."""
    try:
        items = _DECODER.decode(raw).events
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8: a ValueError
        return None
    return items if 1 <= len(items) <= MAX_BATCH_EVENTS else None


def events(raw: bytes, now: datetime) -> list[Event] | None:
    """Every event of a body received at `now` (naive UTC), normalised exactly as
    schema.validate would; None when the usual path must decide the body."""
    items = decoded(raw)
    if items is None:
        return None
    event = Checks(now).event
    try:
        return [
            event(
                item.event_name,
                item.page_path,
                item.name,
                item.success_user_id,
                item.success_value,
                item.properties,
                item.event_id,
                item.timestamp,
                item.context,
            )
            for item in items
        ]
    except Refused:
        return None
