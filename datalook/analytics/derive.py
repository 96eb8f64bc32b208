"""Keep every table derived from the events caught up: the kind index, sessions and saved
funnels.

Reports catch up by themselves before reading; the fold process (`flask analytics fold`),
`flask funnels catch-up` and `flask demo seed` call this so that the work a page view
pays stays small.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import funnel_store, kinds, sessions
from .funnel_models import Funnel
from .funnels import definition_from_json


def catch_up_all(session: Session) -> dict[str, int]:
    """File events in the kind index, derive sessions, then each saved funnel, up to the
    newest safe event.

    Returns the events passed over, by "kinds", "sessions" and "funnel <id>". Strict funnels derive
    nothing (their reports read the events).
    """
    passed = {"kinds": kinds.catch_up(session), "sessions": sessions.catch_up(session)}
    for funnel in session.scalars(select(Funnel).order_by(Funnel.id)).all():
        definition = definition_from_json(funnel.definition)
        if definition.mode == "strict":
            continue
        passed[f"funnel {funnel.id}"] = funnel_store.catch_up(session, funnel, definition)
    return passed
