"""The one place a report read may write: it catches up the derived tables it reads.

The fold process keeps the summaries, the sessions and saved funnels' derivations nearly
caught up; a report derives the few events left itself, here and nowhere else, then only
reads. (Saved and unsaved funnels catch up through funnels.read_catch_up, which their
reports call; it lives beside the funnels' derivation.)

A read does a bounded amount of it: REPORT_CATCHUP_BUDGET_MS from the start of its
catch-up (``report_deadline``), checked between batches. When the fold process has fallen
behind further than that, the report answers from what is folded, and the Freshness each
catch-up returns says so (analytics.backlog): never an answer that waits for a backlog.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy.orm import Session

from ..extensions import db
from . import backlog, identity, sessions
from .backlog import Freshness
from .rollups import fold as summaries

log = logging.getLogger(__name__)


def report_deadline() -> float:
    """The deadline of a report read's catch-up: REPORT_CATCHUP_BUDGET_MS from now."""
    return backlog.deadline_in(current_app.config["REPORT_CATCHUP_BUDGET_MS"] / 1000)


def apply_links(session: Session) -> bool:
    """Apply the links of anonymous ids made since the fold process last did (a few: it
    applies them every second); whether that went well (a failure is logged)."""
    try:
        identity.apply_pending(session)
    except Exception:  # the page must not fail because a link did
        session.rollback()
        log.exception("analytics: applying links before a report failed")
        return False
    return True


def catch_up_summaries(deadline: float | None = None) -> Freshness:
    """Fold the events stored since the last fold (until `deadline`, a report's budget;
    without one, all of them), then start a fresh read; how current the summaries are.

    A failing fold is logged and the report is served from the summaries as they are."""
    failed = not apply_links(db.session())
    newest = backlog.newest_id(db.session)
    try:
        summaries.catch_up(db.engine, current_app.instance_path, deadline=deadline)
    except Exception:  # the page must not fail because the fold did
        log.exception("analytics: catching up before a report failed")
        failed = True
    db.session.commit()  # a SQLite read transaction begun earlier would miss the fold
    found = summaries.CURSORS.read(db.session.connection(), summaries.CURSOR)
    position = 0 if found is None else found.last_event_id  # None: a broken state
    finished = not failed and not backlog.passed(deadline)
    return backlog.measure(db.session, newest, [position], finished)


def catch_up_sessions(session: Session, deadline: float | None = None) -> Freshness:
    """Bring the sessions the journeys read up to the newest safe event (until `deadline`,
    a report's budget); how current they are. A failing catch-up is logged and the
    journeys are read from the sessions as they are."""
    failed = not apply_links(session)
    newest = backlog.newest_id(session)
    try:
        sessions.catch_up(session, deadline)
    except Exception:  # the page must not fail because the catch-up did
        session.rollback()
        log.exception("analytics: catching the sessions up before a report failed")
        failed = True
    finished = not failed and not backlog.passed(deadline)
    return backlog.measure(session, newest, [sessions.position(session)], finished)


def catch_up_stats(deadline: float | None = None) -> Freshness:
    """Catch up what stats.json and the dashboard read, the summaries and the sessions (its
    visit figures), each until `deadline`; how current they are (the one further behind)."""
    newest = backlog.newest_id(db.session)
    summaries_now = catch_up_summaries(deadline)
    sessions_now = catch_up_sessions(db.session(), deadline)
    db.session.commit()  # a fresh read of both
    position = summaries.CURSORS.read(db.session.connection(), summaries.CURSOR)
    positions = [0 if position is None else position.last_event_id, sessions.position(db.session())]
    finished = summaries_now.complete and sessions_now.complete
    return backlog.measure(db.session, newest, positions, finished)
