"""A site's audit log for its owners: filters (action, actor, days) and a CSV download."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from flask import Blueprint, Response, render_template, request
from flask_login import login_required
from werkzeug.exceptions import BadRequest

from ..accounts import audit
from ..accounts.access import site_for
from ..analytics.reports.serialise import safe_cell

bp = Blueprint("audit", __name__, url_prefix="/sites/<int:site_id>")

PAGE = 100


class AuditFilterError(ValueError):
    """A filter parameter is wrong: `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        """Keep the parameter's name with the message."""
        super().__init__(message)
        self.field = field


def _day(name: str) -> date | None:
    """A YYYY-MM-DD parameter (UTC day), or None when absent."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        message = f"{name} must be a date YYYY-MM-DD, got {raw[:20]!r}"
        raise AuditFilterError(name, message) from None


def _filters() -> audit.AuditFilter:
    """The filters of the request's query string (AuditFilterError naming a wrong one)."""
    action = request.args.get("action", "").strip() or None
    if action is not None and action not in audit.LABELS:
        raise AuditFilterError(
            "action", f"action must be one of the listed actions, got {action[:40]!r}"
        )
    actor = request.args.get("actor", "").strip() or None
    if actor is not None and len(actor) > 300:
        raise AuditFilterError("actor", "actor has at most 300 characters")
    since, until = _day("from"), _day("to")
    if since and until and since > until:
        raise AuditFilterError("to", "to must not be before from")
    return audit.AuditFilter(action, actor, since, until)


def _before() -> int | None:
    """The `before` cursor of the next page, or None."""
    raw = request.args.get("before", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise AuditFilterError("before", "before must be an entry id")
    return int(raw)


@bp.route("/audit")
@login_required
def index(site_id: int):
    """The audit log, newest first, 100 entries a page."""
    site = site_for(site_id, "owner")
    try:
        chosen, before = _filters(), _before()
    except AuditFilterError as exc:
        page = render_template(
            "audit/index.html", site=site, entries=[], labels=audit.LABELS, error=exc, args={}
        )
        return page, 400
    entries = audit.site_entries(site.id, chosen, before, PAGE + 1)
    more = entries[PAGE - 1].id if len(entries) > PAGE else None
    return render_template(
        "audit/index.html",
        site=site,
        entries=entries[:PAGE],
        labels=audit.LABELS,
        older=more,
        args={k: v for k, v in request.args.items() if k != "before"},
        details=lambda entry: json.loads(entry.details) if entry.details else {},
        error=None,
    )


@bp.route("/audit.csv")
@login_required
def download(site_id: int):
    """Every entry the filters select, as CSV (cells that a spreadsheet would run as a
    formula are quoted)."""
    site = site_for(site_id, "owner")
    try:
        chosen = _filters()
    except AuditFilterError as exc:
        raise BadRequest(f"{exc.field}: {exc}") from None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "actor", "action", "subject", "events_deleted", "details"])
    for entry in audit.site_entries(site.id, chosen):
        writer.writerow(
            [
                entry.created_at.isoformat(timespec="seconds"),
                safe_cell(entry.actor),
                entry.action,
                safe_cell(entry.subject),
                "" if entry.events_deleted is None else entry.events_deleted,
                safe_cell(entry.details or ""),
            ]
        )
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{site.domain}-audit.csv"'},
    )
