"""Funnels against the database: unsaved ones read the events, saved ones their matched events.

An unsaved funnel reads the range (plus the window) through the (site_id, occurred_at)
index: only the columns it needs, filtered in SQL to events that can match a step (a
property step is narrowed in SQL by its key and checked exactly in Python), streamed in
time order. A saved funnel keeps its matched events in `funnel_events`, fed by a cursor over
events.id and caught up before each read; strict funnels need every event of a visitor (to
see what lies between steps), so they are always read from the events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..models import Event, utcnow
from . import cursors
from .funnel_models import Funnel, FunnelEvent
from .funnels import FunnelDefinition, FunnelReport, MatchRow, Step, compute
from .ranges import DateRange

STREAM_ROWS = 5_000


def step_clause(step: Step) -> ColumnElement[bool]:
    """SQL that keeps the events that may satisfy `step` (exact for all but properties)."""
    parts = [Event.event_name == step.event_name]
    if step.page_path is not None:
        prefix = step.path_prefix
        if prefix is not None:
            parts.append(Event.page_path.startswith(prefix, autoescape=True))
        else:
            parts.append(Event.page_path == step.page_path)
    if step.name is not None:
        parts.append(Event.name == step.name)
    if step.property_key is not None:
        parts.append(Event.properties.is_not(None))
        quoted = json.dumps(step.property_key, ensure_ascii=False)
        if quoted[1:-1] == step.property_key:  # no escapes: the stored text holds it as is
            parts.append(Event.properties.contains(quoted, autoescape=True))
    return and_(*parts)


def any_step_clause(definition: FunnelDefinition) -> ColumnElement[bool]:
    """SQL that keeps the events that may satisfy any step."""
    return or_(*(step_clause(step) for step in definition.steps))


_EVENT_COLUMNS = (
    Event.id,
    Event.visitor_id,
    Event.occurred_at,
    Event.event_name,
    Event.page_path,
    Event.name,
    Event.properties,
    Event.success_value_micros,
)


def event_rows(
    session: Session, site_id: int, definition: FunnelDefinition, start: datetime, end: datetime
) -> Iterator[MatchRow]:
    """The site's events in [start, end) in time order, with their step masks."""
    query = select(*_EVENT_COLUMNS).where(
        Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end
    )
    if definition.mode != "strict":  # strict needs the events between the steps too
        query = query.where(any_step_clause(definition))
    query = query.order_by(Event.occurred_at, Event.id)
    result = session.execute(query.execution_options(yield_per=STREAM_ROWS))
    mask_of = definition.step_mask
    for event_id, visitor, at, event_name, path, name, props, value in result:
        mask = mask_of(event_name, path, name, props)
        if mask or definition.mode == "strict":
            yield MatchRow(event_id, visitor, at, mask, value)


def unsaved_report(
    session: Session, site_id: int, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """Compute a funnel straight from the events of the range (and the window after it)."""
    start, end = rng.start_utc, rng.end_utc
    rows = event_rows(session, site_id, definition, start, end + definition.window)
    return compute(definition, rows, start, end)


def cursor_name(funnel_id: int) -> str:
    """The cursor of a saved funnel's matched events."""
    return f"funnel:{funnel_id}"


def catch_up(session: Session, funnel: Funnel, definition: FunnelDefinition) -> int:
    """Bring a saved funnel's matched events up to the newest safe event."""

    def apply(tx: Session, after_id: int, up_to_id: int) -> None:
        rows = tx.execute(
            select(*_EVENT_COLUMNS).where(
                Event.id > after_id,
                Event.id <= up_to_id,
                Event.site_id == funnel.site_id,
                any_step_clause(definition),
            )
        ).all()
        values = []
        for event_id, visitor, at, event_name, path, name, props, value in rows:
            mask = definition.step_mask(event_name, path, name, props)
            if mask:
                values.append(
                    {
                        "funnel_id": funnel.id,
                        "event_id": event_id,
                        "visitor_id": visitor,
                        "occurred_at": at,
                        "step_mask": mask,
                        "value_micros": value,
                    }
                )
        if values:
            tx.execute(insert(FunnelEvent), values)

    return cursors.catch_up(session, cursor_name(funnel.id), apply)


def forget_matches(session: Session, funnel_id: int) -> None:
    """Drop a funnel's matched events and rewind its cursor (its steps changed)."""
    cursors.lock_and_read(session, cursor_name(funnel_id))  # not while a catch-up runs
    session.execute(delete(FunnelEvent).where(FunnelEvent.funnel_id == funnel_id))
    cursors.reset(session, cursor_name(funnel_id))


def saved_rows(
    session: Session, funnel_id: int, start: datetime, end: datetime
) -> Iterator[MatchRow]:
    """A saved funnel's matched events in [start, end), in time order."""
    result = session.execute(
        select(
            FunnelEvent.event_id,
            FunnelEvent.visitor_id,
            FunnelEvent.occurred_at,
            FunnelEvent.step_mask,
            FunnelEvent.value_micros,
        )
        .where(
            FunnelEvent.funnel_id == funnel_id,
            FunnelEvent.occurred_at >= start,
            FunnelEvent.occurred_at < end,
        )
        .order_by(FunnelEvent.occurred_at, FunnelEvent.event_id)
        .execution_options(yield_per=STREAM_ROWS)
    )
    for event_id, visitor, at, mask, value in result:
        yield MatchRow(event_id, visitor, at, mask, value)


def saved_report(
    session: Session, funnel: Funnel, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """A saved funnel's report: catch up, then read only its matched events."""
    if definition.mode == "strict":
        return unsaved_report(session, funnel.site_id, definition, rng)
    catch_up(session, funnel, definition)
    start, end = rng.start_utc, rng.end_utc
    rows = saved_rows(session, funnel.id, start, end + definition.window)
    return compute(definition, rows, start, end)


def save(
    session: Session, site_id: int, name: str, definition: FunnelDefinition, funnel=None
) -> Funnel:
    """Create a saved funnel, or change one (its matched events are rebuilt on next read)."""
    text = json.dumps(definition.as_json(), separators=(",", ":"))
    if funnel is None:
        funnel = Funnel(site_id=site_id, name=name, definition=text)
        session.add(funnel)
    else:
        if funnel.definition != text:
            forget_matches(session, funnel.id)
        funnel.name, funnel.definition, funnel.updated_at = name, text, utcnow()
    session.commit()
    return funnel


def delete_funnel(session: Session, funnel: Funnel) -> None:
    """Delete a saved funnel with its matched events and its cursor."""
    forget_matches(session, funnel.id)
    session.execute(delete(Funnel).where(Funnel.id == funnel.id))
    session.execute(
        delete(cursors.DerivedCursor).where(cursors.DerivedCursor.name == cursor_name(funnel.id))
    )
    session.commit()
