"""Authenticate a Bearer token on the ingestion hot path: one compiled look-up of the key's
row on a DB-API connection passed in (no Flask, no session), and the reason when refused.

Creating, rotating and revoking keys is apikeys.py (the dashboard and the CLI, through
Flask-SQLAlchemy's session); the rule of being active is the model's (ApiKey.active_at).
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import DateTime, String, bindparam, case, select
from sqlalchemy.engine import Dialect

from ..models import KEY_KIND_LIVE, KEY_KIND_READ, KEY_KIND_TEST, ApiKey
from ..sql.compiled import CompiledStatement, StatementCache
from . import tokens

if TYPE_CHECKING:
    from .wrong_secrets import WrongSecrets


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    """The few facts about a key that an authenticated request needs."""

    id: int
    key_id: str
    site_id: int
    rate_limit: str | None
    is_test: bool = False


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A key that a refused request named by a real key id (for the refusal log only)."""

    id: int
    site_id: int
    is_test: bool


class AuthFailure(Exception):
    """Authentication failed; `code` is the machine-readable reason.

    `key` is the key whose id the token named, when that key exists (a wrong secret, a
    revoked key): its owner sees the refusal in the live view. `remembered`: the token was
    refused from wrong_secrets' memory, without a look-up, because the refusal log would
    only count it (the caller counts it, and never records it: the key may be gone).
    """

    def __init__(
        self, code: str, message: str, key: KnownKey | None = None, remembered: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.key = key
        self.remembered = remembered


_keys = ApiKey.__table__
# Compiled once per dialect. Never cached: the row itself, so that a revocation is seen by
# the very next request on every process and every host.
_LOOKUP = select(
    _keys.c.id,
    _keys.c.key_id,
    _keys.c.site_id,
    _keys.c.secret_hash,
    _keys.c.rate_limit,
    _keys.c.kind,
    # The model's rule of being active, evaluated by the database at the request's `now`.
    case(
        # The class-level rule takes SQL values too (the hybrid's expression side).
        (ApiKey.active_at(bindparam("now", type_=DateTime())), 1),  # type: ignore[arg-type]
        else_=0,
    ).label("active"),
).where(_keys.c.key_id == bindparam("key_id", type_=String()))
_STATEMENTS = StatementCache({"lookup": lambda dialect: CompiledStatement(_LOOKUP, dialect)})


@dataclass(frozen=True, slots=True)
class KeyUse:
    """What a request authenticates for: the kinds of key it takes, and what a token of any
    other kind is told (which kind is needed)."""

    kinds: frozenset[str]
    wrong_kind: str


#: Sending events (/event, /events): live and test keys.
SEND_EVENTS = KeyUse(
    frozenset({KEY_KIND_LIVE, KEY_KIND_TEST}),
    "A read key (dl_read_…) only reads reports; sending events needs a live or test key "
    "(dl_live_… or dl_test_…).",
)
#: Reading reports (the Stats API): read keys.
READ_REPORTS = KeyUse(
    frozenset({KEY_KIND_READ}),
    "Reports are read with a read key (dl_read_…); live and test keys only send events. "
    "Create a read key on the site's keys page.",
)


class _KeyRow(NamedTuple):
    """One row of _LOOKUP, by name (the raw DB-API cursor gives plain tuples)."""

    id: int
    key_id: str
    site_id: int
    secret_hash: str
    rate_limit: str | None
    kind: str
    active: int


def bearer_token(header: str | None) -> str:
    """Extract the token from an Authorization header value, or raise AuthFailure."""
    if header is None or not header.strip():
        raise AuthFailure("missing_token", "Send the API key as 'Authorization: Bearer dl_live_…'.")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise AuthFailure("malformed_token", "The Authorization header must be 'Bearer <token>'.")
    return credentials


@functools.lru_cache(maxsize=1024)
def _presented(credentials: str) -> tuple[str, str, str]:
    """The key id, the secret's stored digest and the kind of a well-formed token
    (MalformedToken if it is not). A pure function of the token, so its answers are kept
    for the next request of the same backend: nothing in them can go stale. Whether the
    key is still valid is read from its row every time."""
    parsed = tokens.parse(credentials)
    return parsed.key_id, tokens.hash_secret(parsed.secret), parsed.kind


def authenticate(
    connection,
    dialect: Dialect,
    header: str | None,
    now: datetime,
    use: KeyUse = SEND_EVENTS,
    wrong: WrongSecrets[KnownKey] | None = None,
) -> AuthenticatedKey:
    """Check a Bearer header on a DB-API connection for a use; raise AuthFailure with the
    reason (a well-formed token of a kind the use does not take: wrong_key_kind). With
    `wrong`, a token already found wrong skips its look-up while its refusal is only counted
    (wrong_secrets.py)."""
    credentials = bearer_token(header)
    try:
        key_id, secret_hash, kind = _presented(credentials)
    except tokens.MalformedToken as exc:
        raise AuthFailure(
            "malformed_token",
            f"The token is malformed: {exc}.",
            _named_key(connection, dialect, credentials, now),
        ) from None
    if kind not in use.kinds:
        # Told before any look-up: the prefix says the kind, whether or not the key exists.
        raise AuthFailure("wrong_key_kind", use.wrong_kind)
    if wrong is not None:
        known = wrong.refused_quietly(key_id, secret_hash, kind)
        if known is not None:
            raise AuthFailure("invalid_token", "The token is not valid.", known, remembered=True)
    found = _lookup(connection, dialect, key_id, now)
    if found is None:
        raise AuthFailure("invalid_token", "The token is not valid.")
    row = _KeyRow(*found)
    is_test = row.kind == KEY_KIND_TEST
    # An unknown key and a wrong secret look the same from outside. (A token of the other
    # kind cannot match: its checksum covers the prefix, so its secret differs.)
    if not hmac.compare_digest(secret_hash, row.secret_hash) or kind != row.kind:
        named = KnownKey(row.id, row.site_id, is_test)
        if wrong is not None:
            wrong.remember(key_id, secret_hash, kind, named)
        raise AuthFailure("invalid_token", "The token is not valid.", named)
    if not row.active:
        raise AuthFailure(
            "revoked_token",
            "The token was revoked or has expired.",
            KnownKey(row.id, row.site_id, is_test),
        )
    return AuthenticatedKey(
        id=row.id,
        key_id=row.key_id,
        site_id=row.site_id,
        rate_limit=row.rate_limit,
        is_test=is_test,
    )


def _lookup(connection, dialect: Dialect, key_id: str, now: datetime) -> tuple | None:
    """The key's row (_KeyRow's fields), or None for an unknown key id."""
    cursor = connection.cursor()
    try:
        lookup = _STATEMENTS.get("lookup", dialect)
        return lookup.execute(cursor, {"key_id": key_id, "now": now}).fetchone()
    finally:
        cursor.close()


def _named_key(connection, dialect: Dialect, credentials: str, now: datetime) -> KnownKey | None:
    """The key that a malformed token still names (a typo in its secret, or the secret cut
    short, with the key id whole), so that its owner sees the refusal; else None. Like a
    wrong secret, this costs the refused request one look-up; nothing of the secret is kept."""
    key_id = tokens.key_id_of(credentials)
    found = _lookup(connection, dialect, key_id, now) if key_id is not None else None
    if found is None:
        return None
    row = _KeyRow(*found)
    return KnownKey(row.id, row.site_id, row.kind == KEY_KIND_TEST)
