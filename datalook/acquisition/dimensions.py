"""The dimensions of the acquisition reports, their sentinel values, and report filters.

DIMENSIONS is the one list of dimension names; `prop:<key>` names an event property as a
dimension. Two sentinels stand for values that are not there:

- NONE, "(none)": the event has no such value (no campaign, no referrer, no such property);
- NOT_RECORDED, "(not recorded)": the event was stored before acquisition data existed.

A filter is written `<dimension><op><value>`, e.g. `country==DE`, `source!=Google`,
`page=~pricing`, `prop:plan==pro`, `campaign==(none)`. The text is split at the first
occurrence of an operator, so a value may itself contain one (`page=~a==b` is page
containing "a==b"). Operators:

- `==`  equals (exact, case-sensitive); a missing value equals "(none)";
- `!=`  the negation of `==`;
- `=~`  contains, case-insensitive; a missing value contains nothing.

Dimension and value are trimmed; dimension names are case-insensitive, property keys are not.
A filter that cannot be used raises FilterError with field "filter", a machine `code`
(empty_filter, unknown_operator, unknown_dimension, invalid_property_key, empty_value,
value_too_long) and a message for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIMENSIONS = (
    "channel",
    "source",
    "medium",
    "campaign",
    "term",
    "content",
    "referrer",
    "page",
    "entry_page",
    "exit_page",
    "country",
    "region",
    "city",
    "device",
    "browser",
    "os",
    "rule",
)
PROPERTY_PREFIX = "prop:"
NONE = "(none)"
NOT_RECORDED = "(not recorded)"
SENTINELS = (NONE, NOT_RECORDED)
EQUALS, NOT_EQUALS, CONTAINS = "==", "!=", "=~"
OPERATORS = (EQUALS, NOT_EQUALS, CONTAINS)
# The event schema's longest property key, and the longest value a filter may compare.
MAX_PROPERTY_KEY = 128
MAX_FILTER_VALUE = 500
FIELD = "filter"

_KNOWN = frozenset(DIMENSIONS)
# A run of operator-like characters where no known operator was found ("=", ">=", "!~").
_WOULD_BE_OPERATOR = re.compile(r"[=!~<>]+")


class FilterError(ValueError):
    """A filter that cannot be used; names the parameter for the JSON error."""

    def __init__(self, code: str, message: str) -> None:
        """Keep the field ("filter") and the machine-readable code beside the message."""
        super().__init__(message)
        self.field = FIELD
        self.code = code
        self.message = message


def property_key(dimension: str) -> str | None:
    """The event property key of a `prop:<key>` dimension, else None."""
    if dimension.startswith(PROPERTY_PREFIX):
        return dimension[len(PROPERTY_PREFIX) :]
    return None


def is_dimension(name: str) -> bool:
    """Whether `name` is a dimension exactly as stored in a Filter (a DIMENSIONS name, or
    `prop:` followed by a key of 1 to MAX_PROPERTY_KEY characters)."""
    if name in _KNOWN:
        return True
    key = property_key(name)
    return key is not None and 1 <= len(key) <= MAX_PROPERTY_KEY and key == key.strip()


@dataclass(frozen=True)
class Filter:
    """One parsed filter: `dimension` (a DIMENSIONS name or `prop:<key>`), `op` (one of
    OPERATORS) and the `value` compared with."""

    dimension: str
    op: str
    value: str

    def matches(self, value: str | None) -> bool:
        """Whether a row's value of the dimension (None when the event has none) passes."""
        if self.op == CONTAINS:
            return value is not None and self.value.casefold() in value.casefold()
        equal = (NONE if value is None else value) == self.value
        return equal if self.op == EQUALS else not equal

    def __str__(self) -> str:
        """The filter written back as text (parse_filter(str(f)) == f)."""
        return f"{self.dimension}{self.op}{self.value}"


def _split(text: str) -> tuple[str, str, str]:
    """(dimension, operator, value) at the first operator of `text`, or FilterError."""
    found = [(at, op) for op in OPERATORS if (at := text.find(op)) >= 0]
    if not found:
        would_be = _WOULD_BE_OPERATOR.search(text)
        if would_be:
            message = f"Unknown operator {would_be.group()!r}: use ==, != or =~."
        else:
            message = "A filter needs an operator: <dimension>==, != or =~<value>."
        raise FilterError("unknown_operator", message)
    at, op = min(found)
    return text[:at].strip(), op, text[at + len(op) :].strip()


def _dimension(name: str) -> str:
    """The dimension as stored in a Filter (built-in names lowercased), or FilterError."""
    if not name:
        raise FilterError(
            "unknown_dimension", "A filter starts with a dimension, e.g. country==DE."
        )
    if name.lower() in _KNOWN:
        return name.lower()
    if name[: len(PROPERTY_PREFIX)].lower() == PROPERTY_PREFIX:
        key = name[len(PROPERTY_PREFIX) :].strip()
        if not 1 <= len(key) <= MAX_PROPERTY_KEY:
            raise FilterError(
                "invalid_property_key",
                f"A property filter is prop:<key>, the key 1 to {MAX_PROPERTY_KEY} characters.",
            )
        return f"{PROPERTY_PREFIX}{key}"
    shown = name if len(name) <= 40 else f"{name[:40]}..."
    raise FilterError(
        "unknown_dimension",
        f"Unknown dimension {shown!r}: use one of {', '.join(DIMENSIONS)} or prop:<key>.",
    )


def parse_dimension(name: str) -> str:
    """A dimension named alone (a report's `dimension`), as a Filter stores it; FilterError
    (unknown_dimension, invalid_property_key) when it is none."""
    return _dimension(name.strip() if isinstance(name, str) else "")


def parse_filter(text: str) -> Filter:
    """Parse `<dimension><op><value>` into a Filter; raise FilterError when it is unusable."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("empty_filter", "A filter is <dimension><op><value>, e.g. country==DE.")
    name, op, value = _split(text.strip())
    dimension = _dimension(name)
    if not value:
        raise FilterError(
            "empty_value", f"The filter on {dimension} has no value (use {NONE} for none)."
        )
    if len(value) > MAX_FILTER_VALUE:
        raise FilterError(
            "value_too_long", f"A filter value is at most {MAX_FILTER_VALUE} characters."
        )
    return Filter(dimension, op, value)
