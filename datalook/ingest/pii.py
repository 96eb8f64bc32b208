"""The PII rule: which property keys are removed before anything is stored.

A key is stripped when, lower-cased with every non-alphanumeric character removed, it
contains `email`, `phone`, `password` or `passwd`, or when one of its words (split at
non-alphanumerics and camelCase boundaries) is `ssn`.
"""

from __future__ import annotations

import functools
import re

_SUBSTRINGS = ("email", "phone", "password", "passwd")
_NON_ALNUM = re.compile(r"[^a-z0-9]")
# Words: runs of capitals not followed by a lower-case letter (SSN), Capitalised or
# lower-case runs (ssn, Last), and digit runs.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)  # the same few keys arrive again and again
def is_pii_key(key: str) -> bool:
    """Return whether a property key names personal data that must not be stored."""
    squashed = _NON_ALNUM.sub("", key.lower())
    if any(part in squashed for part in _SUBSTRINGS):
        return True
    return any(word.lower() == "ssn" for word in _WORDS.findall(key))


def strip_pii(properties: dict) -> tuple[dict, list[str]]:
    """Return the properties without PII keys, and the names of the keys removed."""
    stripped = [key for key in properties if is_pii_key(key)]
    if not stripped:
        return properties, []
    return {k: v for k, v in properties.items() if k not in stripped}, stripped
