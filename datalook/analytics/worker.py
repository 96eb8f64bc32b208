"""The fold process: keeps the report summaries and every derived table caught up.

scripts/serve.sh runs it beside the server (`flask analytics fold`, at low priority, so
that folding never takes CPU from the workers answering events, under `flask analytics
supervise`, which restarts it should it die: analytics.supervisor); server workers do not
fold (see lifecycle.py). Each tick stamps the heartbeat that /readyz reads
(analytics.heartbeat), folds new events into the summaries (analytics.rollups.fold, for a
few seconds at most), then catches the sessions and saved funnels up within a budget
(analytics.catch_up), so that a report's own catch-up before it is read stays small, and
keeps the columnar copy's segments (analytics.store.upkeep). Once a day it also prunes the
audit log past its keeping periods (accounts.audit.prune), so that no cron job is needed.

Any number of folders may run on a host: one leads (sql.leader), the others wait to take
over should it exit.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Flask

from ..accounts import audit
from ..extensions import db
from ..sql.leader import Leader
from . import heartbeat, identity
from .catch_up import TICK_SECONDS, catch_up_all, derivation_pending
from .rollups.fold import BATCH, catch_up, host_lock_path, pending
from .store import upkeep as store_upkeep

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
# Seconds between two ticks while work is left (at most the set interval).
BUSY_INTERVAL_S = 1.0
# The longest a tick folds into the summaries (then the sessions and saved funnels get
# their turn, and the heartbeat is stamped again): a backlog of millions of events is
# folded over many ticks, each a few seconds long.
SUMMARIES_TICK_SECONDS = 5.0
# Seconds between two prunings of the audit log (the first at the leader's first tick).
AUDIT_PRUNE_EVERY_S = 24 * 3600.0


class Folder(Leader):
    """Folds new events every `interval` seconds while it leads the host (into the
    summaries, then the sessions and saved funnels): in the foreground (``run``: `flask
    analytics fold`), or on a thread of this process (``start``)."""

    thread_name = "datalook-analytics-fold"

    def __init__(self, app: Flask, lead_path: str, interval: float = INTERVAL_S) -> None:
        super().__init__(lead_path)
        self.app = app
        self.interval = interval
        self._pruned_at: float | None = None  # time.monotonic() of the last audit prune

    def lead(self) -> None:
        """Tick at once, then until stopped."""
        delay = min(self.interval, BUSY_INTERVAL_S) if self._tick() else self.interval
        while not self.wait(delay):
            # Soon again while work is left (a backlog of the summaries, a first
            # derivation of a funnel go on over many bounded ticks); else at the set
            # interval.
            delay = min(self.interval, BUSY_INTERVAL_S) if self._tick() else self.interval

    def _tick(self) -> bool:
        """One catch-up, with the heartbeat stamped before each part (analytics.heartbeat);
        whether work is left for the next tick. A failure is logged and tried again on the
        next tick."""
        started = time.monotonic()
        try:
            with self.app.app_context():
                heartbeat.beat(db.engine)
                # Links first: the events they move are then folded in this same tick.
                identity.apply_pending(db.session())
                deadline = time.monotonic() + SUMMARIES_TICK_SECONDS
                folded = catch_up(db.engine, self.app.instance_path, deadline=deadline)
                heartbeat.beat(db.engine)
                # Sessions and saved funnels too, so that a report's own catch-up is small;
                # within a budget, so that the next fold of the summaries is not held back.
                # (a funnel's first derivation from the copy is one long step: stamped)
                with heartbeat.beating(db.engine):
                    derived = catch_up_all(db.session(), TICK_SECONDS)
                heartbeat.beat(db.engine)
                # The columnar copy's segments (analytics.store), within a budget too.
                directory = Path(self.app.config["ANALYTICS_STORE_DIR"])
                store_upkeep.tick(db.session(), directory)
                self._prune_audit_daily()
                # Sooner too while the summaries are more than a batch behind.
                more = derivation_pending(db.session()) or pending(db.engine) > BATCH
                db.session.remove()
        except Exception:  # a database outage must not end the thread
            log.exception("analytics fold failed")
            self.wait(5.0)
            return False
        if folded > BATCH or max(derived.values()) > BATCH:
            log.info(
                "analytics: folded %d events, derived %s in %.1f s",
                folded,
                derived,
                time.monotonic() - started,
            )
        return more

    def _prune_audit_daily(self) -> None:
        """Delete the audit entries past their keeping period, at most once a day."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < AUDIT_PRUNE_EVERY_S:
            return
        pruned = audit.prune(db.session())
        db.session.commit()
        self._pruned_at = now
        if pruned:
            log.info("audit: pruned %d entries past their keeping period", pruned)


def folder_for(app: Flask) -> Folder | None:
    """The app's folder (not started); None for an app without a database.

    Any number may run on a host: one wins the lead, the others wait for it in case it
    exits.
    """
    config = getattr(app, "config", {})
    if not config.get("SQLALCHEMY_DATABASE_URI") or not hasattr(app, "extensions"):
        return None
    found = app.extensions.get("datalook_analytics_folder")
    if found is None:
        with app.app_context():
            lead = host_lock_path(db.engine, app.instance_path) + "-lead"
        # ANALYTICS_FOLD_INTERVAL_S trades the writers' lock time per second (each fold's
        # write holds it for a few milliseconds) against how fresh unread summaries are.
        interval = float(config["ANALYTICS_FOLD_INTERVAL_S"])
        found = app.extensions["datalook_analytics_folder"] = Folder(app, lead, interval)
    return found


def start_for(app: Flask) -> Folder | None:
    """Start the app's folder on a thread of this process (once per app): for an app
    served without scripts/serve.sh's fold process, and for tests."""
    found = folder_for(app)
    if found is not None:
        found.start()
    return found
