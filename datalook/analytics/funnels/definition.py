"""A funnel's definition: its steps, window and mode, parsed and validated in one place."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ...ingest.schema import EVENT_NAMES, MAX_NAME, MAX_PATH
from ..parameters import ParameterError

MIN_STEPS, MAX_STEPS = 2, 8
MODES = ("ordered", "strict")
DEFAULT_WINDOW = "24h"
MIN_WINDOW, MAX_WINDOW = timedelta(minutes=1), timedelta(days=30)
# A number and a unit; also the OpenAPI pattern of the `window` parameter.
WINDOW_PATTERN = "^([1-9][0-9]{0,5})([mhd])$"
_WINDOW_RE = re.compile(WINDOW_PATTERN)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_STEP_KEYS = frozenset({"event_name", "page_path", "name", "property"})
MAX_PROPERTY_KEY = 100


@dataclass(frozen=True)
class Step:
    """What one step matches: an event name, and optionally a path, a rule name, a property."""

    event_name: str
    page_path: str | None = None  # exact, or a prefix when it ends in "*"
    name: str | None = None
    property_key: str | None = None
    property_value: object = None

    @property
    def path_prefix(self) -> str | None:
        """The prefix a "/docs/*" path stands for, or None for an exact path."""
        if self.page_path and self.page_path.endswith("*"):
            return self.page_path[:-1]
        return None

    @property
    def label(self) -> str:
        """A short human label, e.g. "pageview /pricing" or "success paid-customer"."""
        parts = [self.event_name]
        if self.page_path:
            parts.append(self.page_path)
        if self.name:
            parts.append(self.name)
        if self.property_key is not None:
            parts.append(f"{self.property_key}={json.dumps(self.property_value)}")
        return " ".join(parts)

    def as_json(self) -> dict:
        """The step as the JSON object the API and the builder use."""
        prop = None
        if self.property_key is not None:
            prop = {"key": self.property_key, "value": self.property_value}
        return {
            "event_name": self.event_name,
            "page_path": self.page_path,
            "name": self.name,
            "property": prop,
        }

    def matches(
        self, event_name: str, page_path: str, name: str | None, properties: str | None
    ) -> bool:
        """Whether an event (its stored columns) satisfies this step."""
        if event_name != self.event_name:
            return False
        if self.page_path is not None:
            prefix = self.path_prefix
            if prefix is not None:
                if not page_path.startswith(prefix):
                    return False
            elif page_path != self.page_path:
                return False
        if self.name is not None and name != self.name:
            return False
        if self.property_key is not None:
            if not properties:
                return False
            try:
                found = json.loads(properties)
            except ValueError:
                return False
            if not isinstance(found, dict) or self.property_key not in found:
                return False
            return same_json_value(found[self.property_key], self.property_value)
        return True


def same_json_value(a: object, b: object) -> bool:
    """JSON equality: true is not 1, and 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


@dataclass(frozen=True)
class FunnelDefinition:
    """The steps, the conversion window and the mode of a funnel."""

    steps: tuple[Step, ...]
    window: timedelta
    window_text: str
    mode: str

    def as_json(self) -> dict:
        """The definition as stored for a saved funnel (and sent to the builder)."""
        return {
            "steps": [s.as_json() for s in self.steps],
            "window": self.window_text,
            "mode": self.mode,
        }

    def step_mask(
        self, event_name: str, page_path: str, name: str | None, properties: str | None
    ) -> int:
        """Bit k set when the event satisfies step k+1."""
        mask = 0
        for index, step in enumerate(self.steps):
            if step.matches(event_name, page_path, name, properties):
                mask |= 1 << index
        return mask


def parse_window(text: object) -> tuple[timedelta, str]:
    """Parse "90m", "24h" or "7d" (1 minute to 30 days) or raise ParameterError naming window."""
    if text is None or text == "":
        text = DEFAULT_WINDOW
    match = _WINDOW_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise ParameterError(
            "window", "invalid_window", "window must be a number and a unit m, h or d, e.g. 24h"
        )
    window = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ParameterError("window", "out_of_range", "window must be from 1 minute to 30 days")
    return window, match.group(0)


def _optional_text(raw: Mapping, key: str, number: int, limit: int) -> str | None:
    """An optional non-empty string field of a step (None or absent: not used)."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ParameterError(
            "step", f"invalid_{key}", f"step {number}: {key} must be a string of 1 to {limit}"
        )
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ParameterError(
            "step", f"invalid_{key}", f"step {number}: {key} has control characters"
        )
    return value


def _blank(raw: object) -> bool:
    """Whether a step says nothing: empty text, {} or only empty values."""
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return True
        try:
            raw = json.loads(text)
        except ValueError:
            return False
    if not isinstance(raw, dict):
        return False
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in raw.values())


def parse_step(raw: object, number: int) -> Step:
    """Validate one step (a JSON object or its text) or raise ParameterError naming step."""
    if _blank(raw):
        # Said apart from a malformed step: an empty row of a form, not a typo.
        raise ParameterError(
            "step",
            "blank_step",
            f"step {number} is blank: give its event_name ({', '.join(EVENT_NAMES)}) and "
            'what it matches, e.g. {"event_name": "pageview", "page_path": "/pricing"}',
        )
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ParameterError(
                "step", "malformed_step", f"step {number} is not a JSON object"
            ) from None
    if not isinstance(raw, dict):
        raise ParameterError("step", "malformed_step", f"step {number} is not a JSON object")
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise ParameterError("step", "unknown_key", f"step {number}: unknown key {unknown[0]!r}")
    event_name = raw.get("event_name")
    if event_name not in EVENT_NAMES:
        raise ParameterError(
            "step",
            "unknown_event_name",
            f"step {number}: event_name must be one of {', '.join(EVENT_NAMES)}",
        )
    page_path = _optional_text(raw, "page_path", number, MAX_PATH)
    if page_path is not None:
        if not page_path.startswith("/"):
            raise ParameterError("step", "invalid_page_path", f"step {number}: page_path starts /")
        if "*" in page_path[:-1]:
            raise ParameterError(
                "step", "invalid_page_path", f"step {number}: '*' may only end a page_path"
            )
    name = _optional_text(raw, "name", number, MAX_NAME)
    prop = raw.get("property")
    key, value = None, None
    if prop is not None:
        if not isinstance(prop, dict) or set(prop) != {"key", "value"}:
            raise ParameterError(
                "step", "invalid_property", f"step {number}: property is {{key, value}}"
            )
        key = _optional_text(prop, "key", number, MAX_PROPERTY_KEY)
        value = prop["value"]
        if key is None or not isinstance(value, str | int | float | bool) or value is None:
            raise ParameterError(
                "step",
                "invalid_property",
                f"step {number}: property needs a key and a string, number or boolean value",
            )
    return Step(event_name, page_path, name, key, value)


def parse_definition(steps: Sequence[object], window: object, mode: object) -> FunnelDefinition:
    """The one validation of a funnel (JSON endpoint, saved-funnel form, tests)."""
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise ParameterError(
            "step", "step_count", f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, got {len(steps)}"
        )
    parsed = tuple(parse_step(raw, number) for number, raw in enumerate(steps, start=1))
    window_delta, window_text = parse_window(window)
    mode = mode or "ordered"
    if mode not in MODES:
        raise ParameterError("mode", "unknown_mode", "mode must be ordered or strict")
    return FunnelDefinition(parsed, window_delta, window_text, mode)


def definition_from_json(text: str) -> FunnelDefinition:
    """Load a stored definition (validated again: stored JSON is still input)."""
    data = json.loads(text)
    return parse_definition(data["steps"], data["window"], data["mode"])
