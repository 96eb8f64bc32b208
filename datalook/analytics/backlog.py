"""How far the derived tables a report reads are behind the events, and time budgets.

A report reads tables derived from the events (the summaries, the sessions, the kind index,
a saved funnel's derivation), each with a cursor over events.id (analytics.cursors). The
fold process keeps them nearly caught up; a report read catches up the rest itself, but only
within a time budget (REPORT_CATCHUP_BUDGET_MS): past its deadline it stops between two
batches and the report answers from what is folded, with a Freshness saying so.

Deadlines are `time.monotonic()` values; None means no limit. No Flask here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from ..models import Event, utcnow


def deadline_in(seconds: float) -> float:
    """The deadline `seconds` from now."""
    return time.monotonic() + seconds


def passed(deadline: float | None) -> bool:
    """Whether the deadline has passed (never, without one)."""
    return deadline is not None and time.monotonic() >= deadline


def seconds_left(deadline: float) -> float:
    """The seconds left until the deadline (0 once it has passed)."""
    return max(0.0, deadline - time.monotonic())


def iso(moment: datetime) -> str:
    """A naive UTC time as JSON writes it: ISO 8601 to the second, with Z."""
    return moment.replace(microsecond=0).isoformat() + "Z"


@dataclass(frozen=True)
class Freshness:
    """How current a report is.

    `complete`: every event stored when the report was asked for is in it (its catch-up
    was not cut short by the budget). `folded_until`: when the last event it counts was
    received (of the store furthest behind, when it read several): events received up to
    then are in it; None when no event is stored at all. `pending_events`: events stored
    but not in it yet, estimated from the ids (the newest id less the cursor furthest
    behind). On PostgreSQL a complete report may leave a few pending: the events of the
    last seconds whose earlier ids have not committed yet.
    """

    complete: bool
    folded_until: datetime | None
    pending_events: int

    def as_json(self) -> dict:
        """The `freshness` object of the report JSON."""
        until = None if self.folded_until is None else iso(self.folded_until)
        return {
            "complete": self.complete,
            "folded_until": until,
            "pending_events": self.pending_events,
        }


def newest_id(bind) -> int:
    """The newest stored event id (0 without events): what a report asked for now should
    include."""
    return int(bind.execute(select(func.max(Event.id))).scalar() or 0)


def from_events(bind, newest: int | None = None) -> Freshness:
    """The freshness of a report read from the events themselves: complete (up to the
    event `newest`, by default the newest now)."""
    return measure(bind, newest_id(bind) if newest is None else newest, [], True)


def measure(bind, newest: int, positions: Sequence[int], finished: bool) -> Freshness:
    """The freshness of a report that read stores at these cursor `positions` (none: it read
    the events themselves), asked for when the newest event id was `newest`; `finished`:
    their catch-up ended by itself (it was neither cut short by the deadline nor failed)."""
    reached = min(positions, default=newest)
    pending = max(0, newest - reached)
    return Freshness(pending == 0 or finished, received_by(bind, reached), pending)


def received_by(bind, last_id: int) -> datetime | None:
    """When the event at a cursor (`last_id`, the last event it took) was received: every
    event received before is in. Without one (nothing taken yet, or erased since), when
    the first event after it was received; None without any event."""
    taken = bind.execute(
        select(Event.received_at).where(Event.id <= last_id).order_by(Event.id.desc()).limit(1)
    ).scalar()
    if taken is not None:
        return taken
    return bind.execute(
        select(Event.received_at).where(Event.id > last_id).order_by(Event.id).limit(1)
    ).scalar()


def short_count(count: int) -> str:
    """A count for people: 950, 12k, 1.2M."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.0f}k" if count >= 10_000 else f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def notice(freshness: Freshness | None, tz, now: datetime | None = None) -> str | None:
    """The quiet line a page shows when its figures are not complete ("Figures up to 14:02;
    1.2M newer events are being processed"), in the zone `tz`; None when they are."""
    if freshness is None or freshness.complete or freshness.folded_until is None:
        return None
    local = freshness.folded_until.replace(tzinfo=UTC).astimezone(tz)
    today = (now or utcnow()).replace(tzinfo=UTC).astimezone(tz).date()
    when = local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")
    count = freshness.pending_events
    noun = "event is" if count == 1 else "events are"
    return f"Figures up to {when}; {short_count(count)} newer {noun} being processed."
