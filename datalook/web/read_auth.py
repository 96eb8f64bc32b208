"""Read keys on the report endpoints (the Stats API): `Authorization: Bearer dl_read_…`.

A request that carries an Authorization header is authenticated by it alone: the session
cookie is not looked at, so a bad token never falls back to a logged-in browser. Without the
header the report endpoints answer the session as before (log-in required). A read key
becomes a principal with a viewer's rights on its one site (accounts.access); other sites
are then 404 like any site the principal may not read.

Bearer requests need no CSRF token: they are not cookie-authenticated (and the report
endpoints are GETs). No CORS headers are sent, so browsers on other origins cannot read
the answers; scripts and servers can.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import current_app, g, make_response, request
from flask_login import login_required

from ..accounts.access import READ_KEY, Principal
from ..envelope import error_response
from ..extensions import db
from ..ingest.usage import counter_for
from ..keys.authentication import READ_REPORTS, AuthFailure, authenticate
from ..models import utcnow
from ..ratelimit import limiter as rate_limiter
from ..ratelimit.limit_text import describe
from ..ratelimit.rules import LimitState, parsed, spend, too_many, with_limit_headers

#: The rate-limit scope of read keys: their own budget, apart from the events API's.
SCOPE = "stats-api"


def _challenge(code: str) -> str:
    """The RFC 6750 challenge for a refused token (as the events API sends)."""
    error = "invalid_request" if code == "malformed_token" else "invalid_token"
    return f'Bearer realm="DataLook", error="{error}"'


def _authenticate(header: str) -> tuple[Any, LimitState | None]:
    """(None, the key's limit state) when the read key may go on; else (the refusal, None).

    Sets `g.principal` for accounts.access. The secret is checked by keys.authentication
    (constant-time compare of its digest) and appears in no log line or refusal record.
    """
    now = utcnow()
    limits = rate_limiter.api_limits(current_app)
    # This request's own DB-API connection: the one compiled look-up /event uses.
    connection = db.session.connection().connection
    try:
        key = authenticate(connection, db.engine.dialect, header, now, READ_REPORTS)
    except AuthFailure as failure:
        # Guessing spends the client address's failed-authentication budget, as on /event.
        limited = limits.refuse_failed_auth(request.remote_addr)
        message = failure.message
        if failure.code == "missing_token":
            message = "Send the read key as 'Authorization: Bearer dl_read_…'."
        challenge = {"WWW-Authenticate": _challenge(failure.code)}
        refusal = limited or error_response(401, failure.code, message, headers=challenge)
        return refusal, None
    counter = counter_for(current_app.extensions)
    counter.record(key.id, now)  # the keys page's "last used" and requests per day
    if counter.due():
        counter.flush(db.engine)
    item = parsed(key.rate_limit or current_app.config["READ_KEY_RATE_LIMIT"])
    state = spend(limits.key_storage, item, SCOPE, key.key_id)
    if state is not None and not state.allowed:
        return too_many(state, f"Rate limit of {describe(item)} exceeded for this read key"), None
    g.principal = Principal(None, READ_KEY, key.site_id)
    return None, state


def read_key_or_session(view: Callable[..., Any]) -> Callable[..., Any]:
    """A report endpoint: a read key in the Authorization header, or else a logged-in user."""
    with_session = login_required(view)

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        """Authenticate by the header when there is one (even empty), else by the session."""
        header = request.headers.get("Authorization")
        if header is None:
            return with_session(*args, **kwargs)
        refusal, state = _authenticate(header)
        if refusal is not None:
            return refusal
        return with_limit_headers(make_response(view(*args, **kwargs)), state)

    return wrapper
