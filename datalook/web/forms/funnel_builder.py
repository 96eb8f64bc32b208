"""The funnel builder's form: name, window and mode (the steps repeat and are read apart)."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError


def _strip(value: str | None) -> str | None:
    """Trim surrounding whitespace from a text input."""
    return value.strip() if isinstance(value, str) else value


class FunnelForm(FlaskForm):
    """Name a funnel and set its conversion window and mode."""

    name = StringField(
        "Funnel name",
        filters=[_strip],
        validators=[
            DataRequired(message="Give the funnel a name, for example “Sign-up to paid”."),
            Length(max=100, message="Use at most 100 characters."),
        ],
    )
    window = StringField(
        "Conversion window",
        filters=[_strip],
        validators=[DataRequired(message="Give a window such as 90m, 24h or 7d.")],
    )
    mode = SelectField(
        "Mode",
        choices=[
            SelectChoice("ordered", "Ordered: other events may happen between steps"),
            SelectChoice("strict", "Strict: each step is the visitor's very next event"),
        ],
        default="ordered",
    )

    def validate_name(self, field: StringField) -> None:
        """Refuse control characters in names shown on pages."""
        if re.search(r"[\x00-\x1f\x7f]", field.data or ""):
            raise ValidationError("The name cannot contain control characters.")


# The builder's "what happens" choice: the event name, its label, and the one input that
# says which event of that kind (every kind may also ask for a property).
KINDS = {
    "pageview": ("Page view of…", "page_path"),
    "click": ("Click on…", "page_path"),
    "success": ("Success…", "rule_name"),
    "custom": ("Custom event…", "custom_name"),
}
# What the input of each kind asks for when it is left empty.
MISSING = {
    "page_path": "give the page path, e.g. /pricing (/* for any page)",
    "rule_name": "give the success rule's name, e.g. paid-customer",
    "custom_name": "give the custom event's name",
}
STEP_FIELDS = (
    "event_name",
    "page_path",
    "rule_name",
    "custom_name",
    "property_key",
    "property_value",
)


def steps_from_form(form) -> tuple[list[dict], dict[int, str]]:
    """The builder's steps in page order (each field repeats once per step), reading only
    the inputs each step's kind uses, and a message per step (0-based) left blank.

    A step with no page, rule or event name is refused rather than saved as "any page
    view": `/*` says any page on purpose.
    """
    columns = {name: form.getlist(name) for name in STEP_FIELDS}
    steps: list[dict] = []
    problems: dict[int, str] = {}
    for i in range(len(columns["event_name"])):

        def at(field: str, index: int = i) -> str | None:
            """The i-th value of a repeated field, None when empty."""
            values = columns[field]
            value = values[index].strip() if index < len(values) else ""
            return value or None

        kind = at("event_name") or ""
        needed = KINDS[kind][1] if kind in KINDS else None
        chosen = at(needed) if needed else None
        key, value = at("property_key"), at("property_value")
        steps.append(
            {
                "event_name": kind,
                "page_path": chosen if needed == "page_path" else None,
                "name": chosen if needed in ("rule_name", "custom_name") else None,
                "property": {"key": key, "value": value or ""} if key else None,
            }
        )
        if needed is None:
            problems[i] = (
                f"Step {i + 1}: choose what happens (page view, click, success or custom)."
            )
        elif chosen is None:
            problems[i] = f"Step {i + 1}: {MISSING[needed]}."
        elif value is not None and key is None:
            problems[i] = f"Step {i + 1}: name the property whose value is “{value}”."
    return steps, problems
