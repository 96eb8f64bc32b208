"""The version of a site's sessions per UTC day: what says whether a day's file of the
journeys' copy (store.session_files) is still current.

Every change to the stored sessions moves on, in its own transaction, the version of each
UTC day on which a changed session started (one gone, made or replaced): the fold's
batches (sessions.store_changes), a re-derivation of a span (sessions.rederive: a rebuild,
a retention cut-off, a link's moved events), an erasure's delete and the demo seed's direct
writes. A day file names the version it was built from and is read only while that is the
day's version; deleting a site deletes both tables' rows with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ...sql.connections import dialect_insert
from .models import SessionDay

DAY = timedelta(days=1)


def day_of(moment: datetime) -> datetime:
    """The UTC midnight that begins the day of `moment`."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def days_between(first: datetime, last: datetime) -> list[datetime]:
    """The UTC days from the one holding `first` to the one holding `last`."""
    days, day = [], day_of(first)
    while day <= last:
        days.append(day)
        day += DAY
    return days


def bump(connection, site_id: int, moments: Iterable[datetime]) -> None:
    """Move on the version of the site's days holding these start times (inside the
    transaction that changes those sessions)."""
    days = sorted({day_of(moment) for moment in moments})  # one order: no deadlock
    if not days:
        return
    table = SessionDay.__table__
    statement = dialect_insert(table, connection.dialect.name)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["site_id", "day"], set_={"version": table.c.version + 1}
        ),
        [{"site_id": site_id, "day": day, "version": 1} for day in days],
    )


def bump_span(connection, site_id: int, first: datetime | None, last: datetime | None) -> None:
    """bump() every day from the one holding `first` to the one holding `last` (nothing
    when either is None: no session)."""
    if first is not None and last is not None:
        bump(connection, site_id, days_between(first, last))
