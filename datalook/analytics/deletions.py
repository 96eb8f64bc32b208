"""The contract between a deletion of events and what is derived from them.

datalook.erasure deletes events (an erasure, a retention cut-off, clearing test events) and,
inside the deleting transaction, just before the DELETE, calls every subscriber of its
ON_EVENTS_DELETED with a DeletedEvents. The subscribers live here in analytics (the report
rollups, the kind index, the sessions and the saved funnels' rows take the events out, and
are left as a derivation of the remaining events would leave them); they import this
module, never erasure: erasure imports analytics, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session


@dataclass(frozen=True, slots=True)
class DeletedEvents:
    """What a deletion removed, for subscribers that keep summaries of the events.

    `first_hour` and `last_hour` bound the UTC hours (truncated occurred_at) of the deleted
    events; `visitor_id` is set when one visitor was erased; `only_test` when only test
    events (which no report counts) were deleted.
    """

    site_id: int
    count: int
    first_hour: datetime | None
    last_hour: datetime | None
    visitor_id: str | None = None
    only_test: bool = False
    # SQL: the events about to be deleted (still readable when the subscribers run).
    where: ColumnElement[bool] | None = None


# A subscriber: called as hook(session, deleted) inside the deleting transaction, before the
# DELETE; one that raises rolls the deletion back.
OnEventsDeleted = Callable[[Session, DeletedEvents], None]
