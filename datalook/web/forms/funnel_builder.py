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
