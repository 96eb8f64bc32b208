"""WTForms forms: validation messages are shown next to their field."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from ...accounts.domains import InvalidDomain, normalise_domain
from ...accounts.emails import InvalidEmail, normalise_email
from ...accounts.passwords import MAX_PASSWORD_LENGTH, password_problem


def _strip(value: str | None) -> str | None:
    """Trim surrounding whitespace from a text input."""
    return value.strip() if isinstance(value, str) else value


class SignupForm(FlaskForm):
    """Create an account."""

    email = StringField(
        "Email",
        filters=[_strip],
        validators=[DataRequired(), Length(max=254)],
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired()],
    )

    def validate_email(self, field: StringField) -> None:
        """Apply the one email rule (the same as `flask users create`)."""
        try:
            normalise_email(field.data)
        except InvalidEmail as exc:
            raise ValidationError(str(exc)) from None

    def validate_password(self, field: PasswordField) -> None:
        """Apply the password policy (length, not the email, strength)."""
        problem = password_problem(field.data or "", self.email.data)
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    """Log in with email and password."""

    email = StringField("Email", filters=[_strip], validators=[DataRequired(), Length(max=254)])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for POST-only buttons (log out, revoke)."""


class SiteForm(FlaskForm):
    """Add a site by its domain."""

    domain = StringField("Domain", validators=[DataRequired(), Length(max=300)])

    def validate_domain(self, field: StringField) -> None:
        """Normalise the domain, or explain why it is not one."""
        try:
            field.data = normalise_domain(field.data)
        except InvalidDomain as exc:
            raise ValidationError(str(exc)) from None


class KeyNameForm(FlaskForm):
    """Name a new API key."""

    name = StringField(
        "Key name",
        filters=[_strip],
        validators=[
            DataRequired(message="Give the key a name, for example “Production server”."),
            Length(min=1, max=64, message="Use 1 to 64 characters."),
        ],
    )

    def validate_name(self, field: StringField) -> None:
        """Refuse control characters in names shown on pages and in snippets."""
        if re.search(r"[\x00-\x1f\x7f]", field.data or ""):
            raise ValidationError("The name cannot contain control characters.")


class KeyKindForm(KeyNameForm):
    """Name a new key and choose its kind: the submit button pressed says live, test or read."""

    kind = HiddenField(default="live")
    # One-time per rendered form: a second post of the same form (a double click, a
    # reload) shows the same new key instead of creating another (keys/reveals.py).
    nonce = HiddenField()

    def validate_kind(self, field: HiddenField) -> None:
        """Accept only the three kinds of key."""
        if (field.data or "live") not in ("live", "test", "read"):
            raise ValidationError("A key is live, test or read.")


class EraseForm(FlaskForm):
    """Erase every event of one visitor, confirmed on a second page."""

    user_id = StringField(
        "The visitor's success_user_id",
        validators=[
            DataRequired(message="Give the success_user_id whose events to erase."),
            Length(max=256, message="At most 256 characters."),
        ],
    )
    confirmed = HiddenField(default="")


class RotateForm(FlaskForm):
    """Rotate a key and choose when the old one stops working."""

    expire_old_in = RadioField(
        "The old key stops working",
        choices=[
            SelectChoice("now", "Now"),
            SelectChoice("1h", "In 1 hour"),
            SelectChoice("24h", "In 24 hours"),
            SelectChoice("7d", "In 7 days"),
        ],
        default="24h",
        validators=[DataRequired()],
    )
    # One-time per rendered form, as KeyKindForm's: a double submit shows the same new key.
    nonce = HiddenField()
