"""Password rules and hashing: one policy for the sign-up form and `flask users create`.

Hashing: bcrypt reads at most 72 bytes (bcrypt 5 refuses more). A password of up to 72 bytes
(UTF-8) is hashed as it is; a longer one is first reduced to 44 bytes with HMAC-SHA256 under
a fixed label and base64, so that every byte counts and no password is refused for its
length. The label keeps an unsalted SHA-256 of the same password, leaked elsewhere, from
being usable here ("hash shucking"). Hashes made before this rule stay valid: no password of
more than 72 bytes could be stored before.

Strength: zxcvbn (a maintained port of Dropbox's estimator) scores a password 0 to 4 by how
many guesses it would take; DataLook asks for at least 3, the estimator's "safely
unguessable" level, and shows the estimator's own warning and suggestions when refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt
from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
MIN_STRENGTH_SCORE = 3
BCRYPT_MAX_BYTES = 72
# zxcvbn refuses inputs over 72 characters (its cost grows with the length); a longer
# password is judged by its first 72, which is already far past the score asked for.
_ESTIMATED_CHARACTERS = 72
_PREHASH_LABEL = b"datalook password pre-hash v1"


def _bcrypt_input(password: str) -> bytes:
    """The bytes bcrypt sees: the password itself up to 72 bytes, else its keyed digest."""
    raw = password.encode("utf-8")
    if len(raw) <= BCRYPT_MAX_BYTES:
        return raw
    return base64.b64encode(hmac.new(_PREHASH_LABEL, raw, hashlib.sha256).digest())


def hash_password(password: str) -> str:
    """Return a bcrypt hash for storage (any length of password)."""
    return bcrypt.hashpw(_bcrypt_input(password), bcrypt.gensalt()).decode()


def check_password(password: str, stored_hash: str) -> bool:
    """Compare a password with a stored hash (bcrypt compares in constant time)."""
    return bcrypt.checkpw(_bcrypt_input(password), stored_hash.encode())


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why a new password is refused (a sentence for the person), or None if it is good."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    if email and password.strip().lower() == email.strip().lower():
        return "Your password must not be your email address."
    hints = [email] if email else []
    estimated = password[:_ESTIMATED_CHARACTERS]
    verdict = zxcvbn(estimated, user_inputs=[*hints, "datalook"], max_length=_ESTIMATED_CHARACTERS)
    if verdict["score"] >= MIN_STRENGTH_SCORE:
        return None
    feedback = verdict["feedback"]
    advice = " ".join(filter(None, [feedback.get("warning"), *feedback.get("suggestions", [])]))
    message = "This password is too easy to guess."
    if advice:
        message += f" {advice}"
    return f"{message} A few unrelated words make a strong password that is easy to remember."
