"""Forms of the shared links: create one (name, optional password, embedding origins),
and the password a visitor types."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ...accounts.passwords import MAX_PASSWORD_LENGTH

#: The most origins one link may be embedded on.
MAX_ORIGINS = 10
# An origin a CSP frame-ancestors list may name: scheme, host (a leading "*." allowed), port.
# Nothing else (no quotes, semicolons, paths), so that no entry can add a directive.
_ORIGIN_RE = re.compile(
    r"\Ahttps?://(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::\d{1,5})?\Z"
)


def _strip(value: str | None) -> str | None:
    """Trim surrounding whitespace from a text input."""
    return value.strip() if isinstance(value, str) else value


def parse_origins(text: str) -> list[str]:
    """The origins of a space- or comma-separated list; ValueError naming a bad one."""
    origins = [item.rstrip("/") for item in re.split(r"[\s,]+", text.strip()) if item]
    for origin in origins:
        if not _ORIGIN_RE.match(origin):
            raise ValueError(
                f"“{origin[:60]}” is not an origin like https://intranet.example.com "
                "(scheme, host and an optional port; no path)."
            )
    if len(origins) > MAX_ORIGINS:
        raise ValueError(f"At most {MAX_ORIGINS} origins.")
    return list(dict.fromkeys(origins))


class ShareForm(FlaskForm):
    """Create a shared link."""

    name = StringField(
        "Name",
        filters=[_strip],
        validators=[
            DataRequired(message="Give the link a name, for example “Investors”."),
            Length(max=64, message="Use 1 to 64 characters."),
        ],
    )
    password = PasswordField(
        "Password (optional)",
        validators=[
            Optional(),
            Length(min=8, max=MAX_PASSWORD_LENGTH, message="Use 8 or more characters."),
        ],
    )
    frame_ancestors = StringField(
        "May be embedded on (optional)", filters=[_strip], validators=[Length(max=900)]
    )

    def validate_name(self, field: StringField) -> None:
        """Refuse control characters in names shown on pages."""
        if re.search(r"[\x00-\x1f\x7f]", field.data or ""):
            raise ValidationError("The name cannot contain control characters.")

    def validate_frame_ancestors(self, field: StringField) -> None:
        """Accept only a list of plain origins (they become a CSP header)."""
        try:
            parse_origins(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class SharePasswordForm(FlaskForm):
    """The password of a protected shared link."""

    password = PasswordField(
        "Password",
        validators=[
            DataRequired(message="Type the link's password."),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
    )
