"""SQL of a funnel's steps: which events may match them, and each event's step mask."""

from __future__ import annotations

import json

from sqlalchemy import and_, case, literal, or_
from sqlalchemy.sql.elements import ColumnElement

from ...models import Event
from .definition import FunnelDefinition, Step


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


def mask_expression(definition: FunnelDefinition) -> ColumnElement[int]:
    """SQL: the step mask of an event (property steps still need the exact check)."""
    return sum(
        (case((step_clause(step), 1 << k), else_=0) for k, step in enumerate(definition.steps)),
        start=literal(0),
    )
