"""One rule for account email addresses: the sign-up form and `flask users create` share it."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LENGTH = 254


class InvalidEmail(ValueError):
    """The text is not an email address DataLook accepts; the message says why."""


def normalise_email(text: str) -> str:
    """Return the canonical, lower-case address, or raise InvalidEmail explaining the problem."""
    text = text.strip()
    if len(text) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"An email address has at most {MAX_EMAIL_LENGTH} characters.")
    try:
        # No DNS look-up (sign-up must not depend on the network); the reserved `.test`
        # domains are allowed so that staging and test accounts work in both ways in.
        checked = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return checked.normalized.lower()
