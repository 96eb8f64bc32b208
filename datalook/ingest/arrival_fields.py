"""The fields of an event that say where its visitor came from, for the one field table
(schema.FIELD_TABLE): what a browser sends with a page view on POST /collect (`referrer`,
`utm`, `click_ids`, `screen_width`), and a server event's `context` on POST /event and
/events (`ip`, `user_agent`, `referrer`, `utm`).

Each check records every problem naming its field (`context.ip`, `utm.source`) with a code,
and returns the normalised value; `arrival_of` gathers them into one Arrival, which
ingest/arrivals.py turns into the stored acquisition columns. An empty string means the
same as leaving a value out. The address and User-Agent of a context are only read: they
are never stored, and never echoed in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..acquisition import geo
from ..acquisition.utm import CLICK_IDS, MAX_UTM_LENGTH

# Who may send a field: a browser (POST /collect), a server (POST /event, /events), both.
BROWSER, SERVER, BOTH = "browser", "server", "both"
UTM_KEYS = ("source", "medium", "campaign", "term", "content")
CONTEXT_KEYS = ("ip", "user_agent", "referrer", "utm")
MAX_REFERRER = 2048
MAX_USER_AGENT = 1024
MAX_SCREEN_WIDTH = 100_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# An absolute URL starts with its scheme (RFC 3986): https://…, android-app://….
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"


class Problems(Protocol):
    """Where a check records a problem (schema's collector)."""

    def add(self, field_name: str, code: str, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Arrival:
    """What an event says about where its visitor came from and on what; None (or empty)
    where it says nothing."""

    referrer: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)  # UTM_KEYS -> value
    click_ids: tuple[str, ...] = ()  # names, in utm.CLICK_IDS order
    screen_width: int | None = None
    ip: str | None = None
    user_agent: str | None = None


def type_name(value: object) -> str:
    """A JSON value's type, named for a client developer."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _text(problems: Problems, name: str, value: object, limit: int) -> str | None:
    """An optional string: None when null or empty; refused when not a string, longer than
    `limit` or holding control characters."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.add(name, "not_a_string", f"{name} must be a string, got {type_name(value)}")
        return None
    if len(value) > limit:
        problems.add(name, "too_long", f"{name} must be at most {limit} characters")
        return None
    if _CONTROL.search(value):
        problems.add(name, "control_characters", f"{name} must not contain control characters")
        return None
    return value.strip() or None


def check_referrer(problems: Problems, value: object, name: str = "referrer") -> str | None:
    """A referrer: an absolute URL (only http and https ones can name a source)."""
    text = _text(problems, name, value, MAX_REFERRER)
    if text is not None and not _ABSOLUTE.match(text):
        problems.add(name, "invalid_url", f"{name} must be an absolute URL like https://host/path")
        return None
    return text


def _unknown(problems: Problems, where: str, value: dict, known: tuple[str, ...]) -> None:
    """Refuse the keys of an object that are not `known`, each naming itself."""
    for key in sorted(set(value) - set(known), key=str):
        shown = str(key)[:60]
        problems.add(
            f"{where}.{shown}",
            "unknown_field",
            f"unknown field {shown!r} in {where}; known: {', '.join(known)}",
        )


def check_utm(problems: Problems, value: object, name: str = "utm") -> dict[str, str] | None:
    """The campaign parameters: an object of source, medium, campaign, term, content, each
    a string of at most MAX_UTM_LENGTH characters."""
    if not isinstance(value, dict):
        problems.add(name, "not_an_object", f"{name} must be an object, got {type_name(value)}")
        return None
    _unknown(problems, name, value, UTM_KEYS)
    found = {}
    for key in UTM_KEYS:
        text = _text(problems, f"{name}.{key}", value.get(key), MAX_UTM_LENGTH)
        if text is not None:
            found[key] = text
    return found


def check_click_ids(problems: Problems, value: object) -> tuple[str, ...] | None:
    """The names of the ad click ids on the landing URL (never their values)."""
    if not isinstance(value, list):
        problems.add(
            "click_ids", "not_an_array", f"click_ids must be an array, got {type_name(value)}"
        )
        return None
    unknown = [item for item in value if item not in CLICK_IDS]
    if unknown:
        problems.add(
            "click_ids",
            "invalid_choice",
            f"click_ids holds names of ad click ids only: {', '.join(CLICK_IDS)}",
        )
        return None
    return tuple(name for name in CLICK_IDS if name in value)


def check_screen_width(problems: Problems, value: object) -> int | None:
    """The screen's width in CSS pixels (screen.width)."""
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(
            "screen_width",
            "not_an_integer",
            f"screen_width must be a whole number, got {type_name(value)}",
        )
        return None
    if not 0 <= value <= MAX_SCREEN_WIDTH:
        problems.add(
            "screen_width", "out_of_range", f"screen_width must be 0 to {MAX_SCREEN_WIDTH}"
        )
        return None
    return value


def _ip(problems: Problems, value: object) -> str | None:
    """context.ip: an IPv4 or IPv6 address (never echoed back)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.add(
            "context.ip",
            "not_a_string",
            f"context.ip must be a string, got {type_name(value)}",
        )
        return None
    try:
        # geo's parser: ipaddress.ip_address's answer, a fraction of its time.
        return str(geo.parse_address(value.strip()))
    except ValueError:
        problems.add("context.ip", "invalid_ip", "context.ip must be an IPv4 or IPv6 address")
        return None


def check_context(problems: Problems, value: object) -> Arrival | None:
    """A server event's context: the visitor's address, User-Agent, referrer and campaign."""
    if not isinstance(value, dict):
        problems.add(
            "context", "not_an_object", f"context must be an object, got {type_name(value)}"
        )
        return None
    _unknown(problems, "context", value, CONTEXT_KEYS)
    utm = value.get("utm")
    return Arrival(
        referrer=check_referrer(problems, value.get("referrer"), "context.referrer"),
        utm=(check_utm(problems, utm, "context.utm") or {}) if utm is not None else {},
        ip=_ip(problems, value.get("ip")),
        user_agent=_text(problems, "context.user_agent", value.get("user_agent"), MAX_USER_AGENT),
    )


def arrival_of(values: Mapping[str, object], browser: bool) -> Arrival:
    """The Arrival of a validated event: a browser's fields, or a server event's context
    (`values` are the checked fields by name; the request adds a browser's address and
    User-Agent later)."""
    if not browser:
        context = values.get("context")
        return context if isinstance(context, Arrival) else Arrival()
    return Arrival(
        referrer=values.get("referrer"),  # type: ignore[arg-type]
        utm=values.get("utm") or {},  # type: ignore[arg-type]
        click_ids=values.get("click_ids") or (),  # type: ignore[arg-type]
        screen_width=values.get("screen_width"),  # type: ignore[arg-type]
    )


_UTM_SCHEMA = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        key: {"type": ["string", "null"], "maxLength": MAX_UTM_LENGTH, "pattern": _NO_CONTROL}
        for key in UTM_KEYS
    },
}
# Empty, or an absolute URL without control characters.
_REFERRER_SCHEMA = {
    "type": ["string", "null"],
    "maxLength": MAX_REFERRER,
    "pattern": "^([A-Za-z][A-Za-z0-9+.-]*:[^\\x00-\\x1f\\x7f]*)?$",
}
_TEXT_CODES = ("not_a_string", "too_long", "control_characters")
_UTM_CODES = ("not_an_object", "unknown_field", *_TEXT_CODES)


def field_specs() -> list[dict]:
    """The arguments of schema.Field for each of these fields, in the table's order."""
    return [
        {
            "name": "referrer",
            "check": lambda problems, value, _now: check_referrer(problems, value),
            "schema": _REFERRER_SCHEMA,
            "description": "Browser only. The page the visitor came from, as the browser "
            "script sends it: `document.referrer` without its query and fragment, empty "
            "when it is the site itself. Only http(s) referrers can name a source.",
            "example": "https://www.google.com/",
            "errors": (*_TEXT_CODES, "invalid_url"),
            "sent_by": BROWSER,
        },
        {
            "name": "utm",
            "check": lambda problems, value, _now: check_utm(problems, value),
            "schema": _UTM_SCHEMA,
            "description": "Browser only. The campaign parameters of the landing URL: "
            "`utm_source` (else `ref`, `source` or `via`), `utm_medium`, `utm_campaign`, "
            f"`utm_term`, `utm_content`, each at most {MAX_UTM_LENGTH} characters.",
            "example": {"source": "newsletter", "medium": "email", "campaign": "launch"},
            "errors": _UTM_CODES,
            "sent_by": BROWSER,
        },
        {
            "name": "click_ids",
            "check": lambda problems, value, _now: check_click_ids(problems, value),
            "schema": {
                "type": ["array", "null"],
                "items": {"type": "string", "enum": list(CLICK_IDS)},
                "uniqueItems": True,
            },
            "description": "Browser only. The names (never the values) of the ad click ids "
            "on the landing URL, such as `gclid`: they say a visit came from an ad.",
            "example": ["gclid"],
            "errors": ("not_an_array", "invalid_choice"),
            "sent_by": BROWSER,
        },
        {
            "name": "screen_width",
            "check": lambda problems, value, _now: check_screen_width(problems, value),
            "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SCREEN_WIDTH},
            "description": "Browser only. `screen.width` in CSS pixels; it corrects the "
            "device class of a phone or iPad that sends a desktop User-Agent.",
            "example": 390,
            "errors": ("not_an_integer", "out_of_range"),
            "sent_by": BROWSER,
        },
        {
            "name": "context",
            "check": lambda problems, value, _now: check_context(problems, value),
            "schema": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "ip": {
                        "type": ["string", "null"],
                        "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                    },
                    "user_agent": {
                        "type": ["string", "null"],
                        "maxLength": MAX_USER_AGENT,
                        "pattern": _NO_CONTROL,
                    },
                    "referrer": _REFERRER_SCHEMA,
                    "utm": _UTM_SCHEMA,
                },
            },
            "description": "Server events only. What your backend knows of the visitor's "
            "request, for the acquisition reports: `ip` (IPv4 or IPv6) gives the country and "
            "`user_agent` the device, browser and OS; both are only read, never stored or "
            "logged. `referrer` (an absolute URL; its query is never stored) and `utm` "
            "(`source`, `medium`, `campaign`, `term`, `content`) give the source and channel. "
            "Not a property: the personal-data rule of properties does not apply to it.",
            "example": {
                "ip": "203.0.113.7",
                "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
                "referrer": "https://www.google.com/",
                "utm": {"source": "newsletter", "medium": "email"},
            },
            "errors": ("not_an_object", "unknown_field", "invalid_ip", *_TEXT_CODES, "invalid_url"),
            "sent_by": SERVER,
        },
    ]
