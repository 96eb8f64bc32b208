"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from ..analytics import heartbeat
from ..analytics.backlog import iso
from ..extensions import db
from ..ratelimit import limiter as rate_limiter

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.route("/healthz")
def healthz():
    """The process is up."""
    return jsonify({"status": "ok"})


def _fold() -> tuple[str, dict]:
    """The fold process's check ("ok", "behind", "down"; "unknown" should it not be read)
    and its details: the events pending and its last heartbeat."""
    try:
        found = heartbeat.state(
            db.session,
            current_app.config["ANALYTICS_FOLD_INTERVAL_S"],
            current_app.config["ANALYTICS_FOLD_BEHIND_EVENTS"],
        )
        db.session.rollback()
    except Exception:  # a probe answers; the reason is in the log
        db.session.rollback()
        log.exception("readyz: the fold's state could not be read")
        return "unknown", {"pending_events": None, "last_heartbeat": None}
    stamped = None if found.last_heartbeat is None else iso(found.last_heartbeat)
    return found.state, {"pending_events": found.pending_events, "last_heartbeat": stamped}


@bp.route("/readyz")
def readyz():
    """The database and the rate-limit storage are reachable; the report fold is running
    and keeping up.

    Only an unreachable database makes the server unready (503). A rate-limit storage
    outage, or a fold process that is down or behind, is `degraded` (200): events are still
    taken and reports still answer, only later figures are late, so a balancer keeps the
    host."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # any failure means not ready; the reason is in the log
        db.session.rollback()
        checks["database"] = "unavailable"
    in_use = rate_limiter.storages()
    try:
        reachable = all(storage.check() for storage in in_use)
    except Exception:
        reachable = False
    if any(getattr(storage, "degraded", False) for storage in in_use) or not reachable:
        checks["rate_limit_storage"] = "degraded: using a per-process fallback window"
    else:
        checks["rate_limit_storage"] = "ok"
    ready = checks["database"] == "ok"
    fold: dict = {"pending_events": None, "last_heartbeat": None}
    if ready:
        checks["fold"], fold = _fold()
    else:
        checks["fold"] = "unknown"
    if not ready:
        status = "unavailable"
    elif all(value == "ok" for value in checks.values()):
        status = "ok"
    else:
        status = "degraded"
    return jsonify({"status": status, "checks": checks, "fold": fold}), 200 if ready else 503
