"""Forms of the analytics pages: site report settings, a success rule's display."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import Length, ValidationError

from ...analytics.money import is_currency
from ...analytics.ranges import UnknownZone, zone


def _strip(value: str | None) -> str | None:
    """Trim surrounding whitespace from a text input."""
    return value.strip() if isinstance(value, str) else value


class ReportSettingsForm(FlaskForm):
    """A site's time zone (how days are cut) and currency (how revenue is shown)."""

    timezone = StringField("Time zone (IANA name, e.g. Europe/Berlin)", filters=[_strip])
    currency = StringField(
        "Currency (ISO 4217 code, e.g. EUR)", filters=[_strip, lambda v: v.upper() if v else v]
    )

    def validate_timezone(self, field: StringField) -> None:
        """Accept only IANA zone names this machine knows."""
        try:
            zone(field.data or "")
        except UnknownZone as exc:
            raise ValidationError("Enter an IANA time zone name, such as Europe/Berlin.") from exc

    def validate_currency(self, field: StringField) -> None:
        """Accept only ISO 4217 codes."""
        if not is_currency(field.data or ""):
            raise ValidationError("Enter a three-letter ISO 4217 currency code, such as EUR.")


class RuleDisplayForm(FlaskForm):
    """How a success rule is shown: its label, and whether it is archived."""

    label = StringField("Display name", filters=[_strip], validators=[Length(max=100)])
    archived = BooleanField("Archived (hidden from the dashboard; its events are kept)")


METRICS = {
    "events": "Events",
    "visitors": "Visitors",
    "conversions": "Conversions",
    "revenue": "Revenue",
}
