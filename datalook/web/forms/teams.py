"""Forms of the members page, invitations and deleting a site."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from ...accounts.emails import InvalidEmail, normalise_email
from ...models import ROLE_VIEWER, ROLES

_ROLE_CHOICES = [SelectChoice(role, role.capitalize()) for role in reversed(ROLES)]


class InviteForm(FlaskForm):
    """Invite an email address with a role."""

    email = StringField(
        "Email",
        validators=[DataRequired(message="Give the email address to invite."), Length(max=254)],
    )
    role = SelectField("Role", choices=_ROLE_CHOICES, default=ROLE_VIEWER)

    def validate_email(self, field: StringField) -> None:
        """Apply the one email rule of accounts."""
        try:
            field.data = normalise_email(field.data or "")
        except InvalidEmail as exc:
            raise ValidationError(str(exc)) from None


class RoleForm(FlaskForm):
    """Change a member's role."""

    role = SelectField("Role", choices=_ROLE_CHOICES)


class DeleteSiteForm(FlaskForm):
    """Delete a site: confirmed by typing its domain."""

    confirm = StringField(
        "Type the site's domain to confirm",
        validators=[DataRequired(message="Type the site's domain to confirm.")],
    )
