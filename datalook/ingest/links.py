"""Links of anonymous browser ids to users, made at ingestion (the events follow later:
analytics/identity.py rewrites them).

A link is made by a browser event that carries both its anonymous id and a user id (the
snippet's `data-user-id`, `identify()`), and by a live key's server event whose context
named the visitor's address and User-Agent (the day's cookieless id is computed from them
as /collect computes it). The first link of an anonymous id wins, except that a server's
link overrides a browser's: a browser can only ever link its own id (the server computes
it from the browser's own request), a backend is trusted more.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, Dialect

from ..browser import visitor
from ..models import LINK_FROM_BROWSER, LINK_FROM_SERVER, VisitorLink
from ..sql.compiled import CompiledStatement, StatementCache
from ..sql.connections import dialect_insert

_links = cast(Table, VisitorLink.__table__)
_LINK_COLUMNS = ["site_id", "anonymous_id", "user_id", "origin", "day", "created_at"]
# Why a server event's context joined no visit (the answer's DataLook-Visit-Join header).
TOO_OLD = "too-old"


def _put(dialect: Dialect, override: bool) -> CompiledStatement:
    """INSERT a link; on a conflict nothing, or (`override`, a server's link) the server's
    user in place of a browser's."""
    statement = dialect_insert(_links, dialect.name).values(pending=True)
    if override:
        statement = statement.on_conflict_do_update(
            index_elements=["site_id", "anonymous_id"],
            set_={
                "user_id": statement.excluded.user_id,
                "origin": statement.excluded.origin,
                "created_at": statement.excluded.created_at,
                "pending": True,
            },
            where=(_links.c.origin == LINK_FROM_BROWSER),
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["site_id", "anonymous_id"])
    return CompiledStatement(statement, dialect, _LINK_COLUMNS)


_STATEMENTS = StatementCache(
    {
        "browser": lambda d: _put(d, override=False),
        "server": lambda d: _put(d, override=True),
    }
)


def record(
    cursor, dialect: Dialect, site_id: int, links: list[tuple[str, str, str]], now: datetime
) -> None:
    """Make links ((anonymous id, user id, origin)) in the caller's transaction, in order
    (the first link of an id wins): each run of one origin in one driver call."""
    start = 0
    while start < len(links):
        origin = links[start][2]
        end = start + 1
        while end < len(links) and links[end][2] == origin:
            end += 1
        statement = _STATEMENTS.get("server" if origin == LINK_FROM_SERVER else "browser", dialect)
        statement.executemany(
            cursor,
            [
                {
                    "site_id": site_id,
                    "anonymous_id": anonymous_id,
                    "user_id": user_id,
                    "origin": origin,
                    "day": now.date(),
                    "created_at": now,
                }
                for anonymous_id, user_id, origin in links[start:end]
            ],
        )
        start = end


def linked_user(connection: Connection, site_id: int, anonymous_id: str) -> str | None:
    """The user an anonymous id is linked to, if any (/collect: a later anonymous event of
    a linked browser counts as its user from the start)."""
    return connection.scalar(
        select(_links.c.user_id).where(
            _links.c.site_id == site_id, _links.c.anonymous_id == anonymous_id
        )
    )


def visit_of(
    connection: Connection, site_id: int, day: date, today: date, address: str, user_agent: str
) -> str | None:
    """The cookieless id a browser with this address and User-Agent had on `day` on this
    site, exactly as /collect computed it; None when that day's salt is gone (only today's
    and yesterday's are kept) or never existed (no browser visited that day)."""
    if not today - timedelta(days=1) <= day <= today:
        return None
    if day == today:
        salt = visitor.daily_salt(connection, day)
    else:
        found = visitor.existing_salt(connection, day)
        if found is None:
            return None
        salt = found
    return visitor.visitor_id(salt, site_id, address, user_agent)
