"""A new key's token, held for REVEAL_FOR so that its show-once page survives a double submit,
a reload, or Back then Forward, without creating a second key and without losing the token.

Each create-key form carries a one-time nonce. The POST that creates the key stores its
token encrypted (Fernet) under a key derived from the app's secret and that nonce, and the
nonce only as a SHA-256; then it redirects to the show-once page (Post/Redirect/Get). A
second POST of the same form (a double click) finds the reveal by the nonce's hash and
redirects to the same page. The page decrypts with the nonce the browser's session holds,
so neither the database nor the session alone gives the token away; after REVEAL_FOR the
ciphertext is wiped and the page says the token cannot be shown again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..models import ApiKey, utcnow
from .models import KeyReveal

REVEAL_FOR = timedelta(minutes=10)
# Rows outlive their ciphertext for a day: a late repost of the form still finds its key.
FORGET_AFTER = timedelta(days=1)
NONCE_BYTES = 32
_NONCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_nonce() -> str:
    """A fresh one-time nonce for a create-key form."""
    return secrets.token_urlsafe(NONCE_BYTES)


def valid_nonce(nonce: str | None) -> bool:
    """Whether a posted nonce looks like one new_nonce() made (anything else is ignored)."""
    return bool(nonce) and 40 <= len(nonce or "") <= 64 and set(nonce or "") <= _NONCE_CHARS


def nonce_hash(nonce: str) -> str:
    """The stored form of a nonce."""
    return hashlib.sha256(nonce.encode()).hexdigest()


def _cipher(secret_key: str, nonce: str) -> Fernet:
    """The Fernet key of one reveal: HMAC-SHA256 of the nonce under the app's secret."""
    derived = hmac.new(secret_key.encode(), b"key-reveal\0" + nonce.encode(), hashlib.sha256)
    return Fernet(base64.urlsafe_b64encode(derived.digest()))


def store(
    session: Session,
    secret_key: str,
    nonce: str,
    key: ApiKey,
    token: str,
    user_id: int,
    now: datetime | None = None,
) -> KeyReveal:
    """Add the reveal of a key just created (the caller commits it with the key)."""
    now = now or utcnow()
    reveal = KeyReveal(
        nonce_hash=nonce_hash(nonce),
        site_id=key.site_id,
        user_id=user_id,
        api_key_id=key.id,
        ciphertext=_cipher(secret_key, nonce).encrypt(token.encode()).decode(),
        expires_at=now + REVEAL_FOR,
    )
    session.add(reveal)
    return reveal


def find(session: Session, nonce: str, site_id: int, user_id: int) -> KeyReveal | None:
    """The reveal a form's nonce made, for this site and user (expired or not)."""
    found = session.scalar(select(KeyReveal).where(KeyReveal.nonce_hash == nonce_hash(nonce)))
    if found is None or (found.site_id, found.user_id) != (site_id, user_id):
        return None
    return found


def usable(session: Session, nonce: str | None, site_id: int, user_id: int) -> str:
    """The posted nonce when it is well formed and not another site's or user's (a crafted
    or copied form); otherwise a fresh one (that post then simply makes its key)."""
    if nonce is None or not valid_nonce(nonce):
        return new_nonce()
    other = session.scalar(select(KeyReveal).where(KeyReveal.nonce_hash == nonce_hash(nonce)))
    if other is not None and (other.site_id, other.user_id) != (site_id, user_id):
        return new_nonce()
    return nonce


@dataclass(frozen=True)
class Revealed:
    """What the show-once page shows: the key, and its token while it may still be shown."""

    key: ApiKey
    token: str | None


def open_reveal(
    session: Session,
    secret_key: str,
    reveal: KeyReveal,
    nonce: str | None,
    now: datetime | None = None,
) -> Revealed:
    """The key of a reveal, with its token when `nonce` is the reveal's and it is not
    expired (otherwise the token is None: it cannot be shown again)."""
    now = now or utcnow()
    key = session.get(ApiKey, reveal.api_key_id)
    if key is None:  # cannot be: the reveal goes with its key (ON DELETE CASCADE)
        raise LookupError(f"the key of reveal {reveal.id} is gone")
    if (
        nonce is None
        or reveal.ciphertext is None
        or reveal.expires_at <= now
        or not hmac.compare_digest(nonce_hash(nonce), reveal.nonce_hash)
    ):
        return Revealed(key, None)
    try:
        plain = _cipher(secret_key, nonce).decrypt(reveal.ciphertext.encode())
    except InvalidToken:  # the app's secret changed meanwhile
        return Revealed(key, None)
    return Revealed(key, plain.decode())


def wipe_expired(session: Session, now: datetime | None = None) -> None:
    """Wipe the ciphertext of expired reveals and forget old ones (the caller commits)."""
    now = now or utcnow()
    session.execute(
        update(KeyReveal)
        .where(KeyReveal.expires_at <= now, KeyReveal.ciphertext.is_not(None))
        .values(ciphertext=None)
    )
    session.execute(delete(KeyReveal).where(KeyReveal.expires_at <= now - FORGET_AFTER))
