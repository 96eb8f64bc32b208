"""A site's API keys: list, create, revoke, rotate, and the first-event status."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import live
from ..accounts.access import site_for, site_key_or_404
from ..extensions import db
from ..ingest.refusals import recorder_for
from ..ingest.schema import format_value
from ..ingest.usage import counter_for
from ..keys import apikeys, reveals
from ..models import ApiKey, Event, KeyUsage, utcnow
from . import show_once
from .forms.accounts import EmptyForm, RotateForm
from .quest_state import server_events_done
from .timefmt import site_time

bp = Blueprint("keys", __name__, url_prefix="/sites/<int:site_id>/keys")


def _requests_last_24h(site_id: int) -> dict[int, int]:
    """Requests per key over the last 24 hours (hourly buckets)."""
    since = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    rows = db.session.execute(
        select(KeyUsage.api_key_id, func.sum(KeyUsage.requests))
        .join(ApiKey, ApiKey.id == KeyUsage.api_key_id)
        .where(ApiKey.site_id == site_id, KeyUsage.hour >= since)
        .group_by(KeyUsage.api_key_id)
    ).all()
    return {key_pk: int(total) for key_pk, total in rows}


def _render_index(site, form, status=200, existing=None):
    """Render the keys page with the figures of each key (and the key a name clashed with)."""
    # This process's pending counts first, so that the page is current.
    counter_for(current_app.extensions).flush(db.engine)
    now = utcnow()
    keys = db.session.scalars(
        select(ApiKey)
        .where(ApiKey.site_id == site.id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())
    ).all()
    active = sum(1 for key in keys if key.is_active(now) and not key.is_read)
    active_read = sum(1 for key in keys if key.is_active(now) and key.is_read)
    return render_template(
        "keys/index.html",
        site=site,
        keys=keys,
        active=active,
        cap=apikeys.MAX_ACTIVE_KEYS,
        active_read=active_read,
        read_cap=apikeys.MAX_ACTIVE_READ_KEYS,
        usage=_requests_last_24h(site.id),
        form=form,
        existing=existing,
    ), status


@bp.route("/")
@login_required
def index(site_id: int):
    """List the site's keys."""
    return _render_index(site_for(site_id, "admin"), show_once.new_form())


@bp.route("/", methods=["POST"])
@login_required
def create(site_id: int):
    """Create a key from the keys page and show it once."""
    return show_once.create_from_form(site_for(site_id, "admin"), _render_index)


@bp.route("/created/<int:reveal_id>")
@login_required
def created(site_id: int, reveal_id: int):
    """The show-once page a create form redirects to (reloading it posts nothing)."""
    return show_once.reveal_page(site_for(site_id, "admin"), reveal_id)


@bp.route("/<key_id>/revoke", methods=["GET", "POST"])
@login_required
def revoke(site_id: int, key_id: str):
    """Confirm, then revoke a key."""
    site = site_for(site_id, "admin")
    key = site_key_or_404(site, key_id)
    form = EmptyForm()
    if form.validate_on_submit():
        apikeys.revoke_key(key, actor=current_user)
        flash(f"Key “{key.name}” is revoked; requests with it are refused from now on.", "success")
        return redirect(url_for("keys.index", site_id=site.id))
    return render_template("keys/revoke.html", site=site, key=key, form=form)


@bp.route("/<key_id>/rotate", methods=["GET", "POST"])
@login_required
def rotate(site_id: int, key_id: str):
    """Choose a grace period, then replace the key and show the new token once."""
    site = site_for(site_id, "admin")
    key = site_key_or_404(site, key_id)
    form = RotateForm()
    if form.validate_on_submit():
        shown = show_once.rotate_from_form(site, key, form)
        if shown is not None:
            return shown
    elif not form.is_submitted():
        form.nonce.data = reveals.new_nonce()
    status = 400 if form.errors else 200
    # Each choice says the moment it means, in the site's zone: "In 24 hours (until …)".
    now = utcnow()
    ends = {
        choice: site_time(now + grace, site)
        for choice, grace in apikeys.GRACE_PERIODS.items()
        if grace
    }
    page = render_template("keys/rotate.html", site=site, key=key, form=form, ends=ends)
    return page, status


@bp.route("/<key_id>/status.json")
@login_required
def status(site_id: int, key_id: str):
    """The first event received with this key, for the quest's live wait."""
    site = site_for(site_id, "admin")
    key = site_key_or_404(site, key_id)
    first = db.session.scalar(
        select(Event).where(Event.api_key_id == key.id).order_by(Event.id).limit(1)
    )
    if first is None:
        # Refusals this process has not written yet, so the wait sees them at once.
        recorder_for(current_app.extensions).flush(db.engine)
    body: dict[str, object] = {
        "received": first is not None,
        "quest_done": server_events_done(site),
        "event": None,
        # The newest refused request of this key: the wait explains it instead of waiting.
        "refused": None if first is not None else live.last_refusal(key),
    }
    if first is not None:
        body["event"] = {
            "event_name": first.event_name,
            "name": first.name,
            "page_path": first.page_path,
            "success_value": format_value(first.success_value_micros),
            "timestamp": first.occurred_at.replace(microsecond=0).isoformat() + "Z",
            # Shown as is: the same format and zone as every other time in the app.
            "time": site_time(first.occurred_at, site, seconds=True),
        }
        body["dashboard_url"] = url_for("dashboard.overview", site_id=site.id)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
