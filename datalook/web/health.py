"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from ..extensions import db
from ..ratelimit import limiter as rate_limiter

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz():
    """The database and the rate-limit storage are reachable."""
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
    status = (
        "ok"
        if ready and checks["rate_limit_storage"] == "ok"
        else ("degraded" if ready else "unavailable")
    )
    return jsonify({"status": status, "checks": checks}), 200 if ready else 503
