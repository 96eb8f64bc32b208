"""The one place a report read may write: it catches up the derived tables it reads.

The fold process keeps the summaries, the sessions and saved funnels' derivations nearly
caught up; a report derives the few events left itself, here and nowhere else, then only
reads. (Saved and unsaved funnels catch up through funnels.read_catch_up, which their
reports call; it lives beside the funnels' derivation.)
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy.orm import Session

from ..extensions import db
from . import sessions
from .rollups import fold as summaries

log = logging.getLogger(__name__)


def catch_up_summaries(max_batches: int | None = 10) -> None:
    """Fold the events stored since the last fold (a bounded number: a backlog is the fold
    thread's work), then start a fresh read. A failing fold is logged and the report is
    served from the summaries as they are."""
    try:
        summaries.catch_up(db.engine, current_app.instance_path, max_batches)
    except Exception:  # the page must not fail because the fold did
        log.exception("analytics: catching up before a report failed")
    db.session.commit()  # a SQLite read transaction begun earlier would miss the fold


def catch_up_sessions(session: Session) -> None:
    """Bring the sessions the journeys read up to the newest safe event."""
    sessions.catch_up(session)
