"""API token format: generate, parse strictly, hash, and compare.

A token is ``dl_live_<key_id>_<secret>``, ``dl_test_<key_id>_<secret>`` for a test key, or
``dl_read_<key_id>_<secret>`` for a read key (the Stats API). Same rules for all three; the
checksum covers the prefix, so one kind of token cannot be turned into another:

* ``key_id``: 12 characters of ``[A-Za-z0-9]``; public, stored in plain text, shown masked.
* ``secret``: 32 random characters of ``[A-Za-z0-9]`` (about 190 bits from ``secrets``)
  followed by a 6-character base62 CRC32 checksum of everything before it, so that a
  mistyped token is refused without checking its secret against the database (as GitHub's
  tokens are). If its key id is still whole (``key_id_of``), the key's owner is told.

Only the SHA-256 digest of the secret is stored. The secret carries far more entropy than
any password, so a fast hash is safe here, and it keeps the ingestion path cheap (bcrypt
would cost tens of milliseconds per request).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "dl_live_"
TEST_PREFIX = "dl_test_"
READ_PREFIX = "dl_read_"
# The prefix of each kind of key (models.KEY_KIND_LIVE / KEY_KIND_TEST / KEY_KIND_READ).
PREFIXES = {"live": PREFIX, "test": TEST_PREFIX, "read": READ_PREFIX}
KINDS = {prefix: kind for kind, prefix in PREFIXES.items()}
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 12
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
SECRET_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH
TOKEN_LENGTH = len(PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH

# \Z, not $: "$" would also match before a trailing newline.
TOKEN_RE = re.compile(
    rf"\Adl_(?:live|test|read)_[A-Za-z0-9]{{{KEY_ID_LENGTH}}}_[A-Za-z0-9]{{{SECRET_LENGTH}}}\Z"
)
# A token whose prefix and key id are whole but whose secret is mistyped or cut short.
_NAMES_KEY_RE = re.compile(
    rf"\Adl_(?:live|test|read)_([A-Za-z0-9]{{{KEY_ID_LENGTH}}})"
    rf"_[A-Za-z0-9]{{0,{2 * SECRET_LENGTH}}}\Z"
)
# Anything that looks like a token inside free text (to remove it from what is recorded).
TOKEN_IN_TEXT = re.compile(r"dl_(?:live|test|read)_[A-Za-z0-9]{4,}(?:_[A-Za-z0-9]*)?")


class MalformedToken(ValueError):
    """The string is not a well-formed DataLook token (no database look-up needed)."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly generated token: the plaintext (shown once) and what the database keeps."""

    key_id: str
    token: str
    secret_hash: str


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token that passed the format and checksum checks."""

    key_id: str
    secret: str
    kind: str = "live"


def _random_string(length: int) -> str:
    """Return `length` characters drawn uniformly from the token alphabet."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _base62(number: int, width: int) -> str:
    """Encode a non-negative integer in base62, left-padded to `width` characters."""
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def _checksum(text: str) -> str:
    """Return the 6-character base62 CRC32 checksum of `text`."""
    return _base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LENGTH)


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 digest stored for a secret."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def generate_key_id() -> str:
    """Return a new random key id."""
    return _random_string(KEY_ID_LENGTH)


def generate(key_id: str | None = None, kind: str = "live") -> NewToken:
    """Create a new token of a kind (live, test or read); show the plaintext once, then
    forget it."""
    key_id = key_id or generate_key_id()
    random_part = _random_string(RANDOM_LENGTH)
    body = f"{PREFIXES[kind]}{key_id}_{random_part}"
    secret = random_part + _checksum(body)
    return NewToken(
        key_id=key_id, token=f"{body}{_checksum(body)}", secret_hash=hash_secret(secret)
    )


def parse(raw: str) -> ParsedToken:
    """Parse a token strictly; surrounding whitespace is forgiven, anything else is not."""
    token = raw.strip()
    if len(token) != TOKEN_LENGTH or not TOKEN_RE.match(token):
        raise MalformedToken(
            "token does not have the form dl_live_<key_id>_<secret> (or dl_test_…, dl_read_…)"
        )
    body, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        raise MalformedToken("token checksum does not match (mistyped or truncated token)")
    prefix = token[: len(PREFIX)]  # all prefixes have the same length
    key_id, _, secret = token[len(prefix) :].partition("_")
    return ParsedToken(key_id=key_id, secret=secret, kind=KINDS[prefix])


def key_id_of(raw: str) -> str | None:
    """The key id named by a token that `parse` refused, if its prefix and key id are whole
    (a typo in the secret, or the secret cut short); None for anything else."""
    match = _NAMES_KEY_RE.match(raw.strip())
    return match.group(1) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Compare a presented secret with the stored digest in constant time."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def masked(key_id: str, kind: str = "live") -> str:
    """Return the display form of a key whose secret is never shown again."""
    return f"{PREFIXES.get(kind, PREFIX)}{key_id}_••••"
