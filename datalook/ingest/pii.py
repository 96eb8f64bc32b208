"""The PII rule: which properties are removed before anything is stored.

By key: a key is stripped when, lower-cased with every non-alphanumeric character removed,
it contains `email`, `phone`, `password`, `passwd`, `address`, `creditcard` or
`cardnumber`, or when one of its words (split at non-alphanumerics and camelCase
boundaries) is `ssn`, `ip`, `card`, `iban`, `cvv` or `cvc`.

By value: a string value is stripped (with its key) when it holds an email address, or is
as a whole a payment card number (13 to 19 digits passing the Luhn check, spaces or
dashes allowed), an IBAN (its check digits valid), or an IP address.

`success_user_id` and `context` are not properties: they have their own rules.
"""

from __future__ import annotations

import functools
import ipaddress
import re

_SUBSTRINGS = ("email", "phone", "password", "passwd", "address", "creditcard", "cardnumber")
_WORDS_STRIPPED = frozenset({"ssn", "ip", "card", "iban", "cvv", "cvc"})
_NON_ALNUM = re.compile(r"[^a-z0-9]")
# Words: runs of capitals not followed by a lower-case letter (SSN), Capitalised or
# lower-case runs (ssn, Last), and digit runs.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
# Longer values are prose or ids, never one card number, IBAN or address alone.
_MAX_WHOLE_VALUE = 64


@functools.lru_cache(maxsize=4096)  # the same few keys arrive again and again
def is_pii_key(key: str) -> bool:
    """Return whether a property key names personal data that must not be stored."""
    squashed = _NON_ALNUM.sub("", key.lower())
    if any(part in squashed for part in _SUBSTRINGS):
        return True
    return any(word.lower() in _WORDS_STRIPPED for word in _WORDS.findall(key))


def _luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn check of payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban(text: str) -> bool:
    """Whether a compact upper-case text is an IBAN with valid check digits (ISO 13616)."""
    moved = text[4:] + text[:4]
    return int("".join(str(int(char, 36)) for char in moved)) % 97 == 1


def is_pii_value(value: object) -> bool:
    """Return whether a property value looks like personal data (see the module's rule)."""
    if not isinstance(value, str):
        return False
    if "@" in value and _EMAIL.search(value):
        return True
    text = value.strip()
    if not text or len(text) > _MAX_WHOLE_VALUE:
        return False
    if text[0].isdigit() and _CARD.fullmatch(text):
        return _luhn(text.replace(" ", "").replace("-", ""))
    compact = text.replace(" ", "").upper()
    if _IBAN.fullmatch(compact) and _iban(compact):
        return True
    if ":" in text or text.count(".") == 3:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return True
    return False


def strip_pii(properties: dict) -> tuple[dict, list[str]]:
    """Return the properties without PII keys or values, and the names of the keys removed."""
    stripped = [key for key, value in properties.items() if is_pii_key(key) or is_pii_value(value)]
    if not stripped:
        return properties, []
    return {k: v for k, v in properties.items() if k not in stripped}, stripped
