"""The "Add the browser snippet" quest: the site's snippet, its origins and key, the live wait."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from ..accounts import audit
from ..accounts.access import site_for
from ..browser import settings
from ..browser.origins import InvalidOrigin, added_origins, default_origins
from ..browser.script import snippet
from ..extensions import db
from ..models import VISITOR_IDS, Site
from . import show_once
from .forms.accounts import EmptyForm
from .quest_state import browser_events_done

bp = Blueprint("browser_quest", __name__, url_prefix="/sites/<int:site_id>/quests/browser-sdk")


class OriginForm(FlaskForm):
    """Add (or remove) one allowed origin."""

    origin = StringField("Origin", validators=[DataRequired(), Length(max=300)])


class DntForm(FlaskForm):
    """Turn the Do-Not-Track setting on or off."""

    respect = HiddenField(validators=[AnyOf(["on", "off"])])


class VisitorIdsForm(FlaskForm):
    """Choose the site's browser visitor ids: cookieless or persistent."""

    mode = HiddenField(validators=[AnyOf(list(VISITOR_IDS))])


def _render(site: Site, origin_form: OriginForm | None = None, status: int = 200):
    """Render the quest page."""
    page = render_template(
        "quests/browser_sdk.html",
        site=site,
        snippet=snippet(
            show_once.base_url(),
            site.site_key or "",
            site.respect_dnt,
            site.visitor_ids == "persistent",
        ),
        default_origins=default_origins(site.domain),
        added_origins=added_origins(site.allowed_origins),
        origin_form=origin_form or OriginForm(),
        form=EmptyForm(),
        done=browser_events_done(site),
    )
    return page, status


@bp.route("/")
@login_required
def show(site_id: int):
    """Show the snippet pre-filled with the site key, and wait for the first pageview."""
    return _render(site_for(site_id, "admin"))


@bp.route("/status.json")
@login_required
def status(site_id: int):
    """The site's first browser pageview, for the quest's live wait (reads the site only)."""
    site = site_for(site_id, "admin")
    done = browser_events_done(site)
    body: dict = {"received": done, "quest_done": done, "event": None}
    if done and site.first_pageview_at is not None:
        body["event"] = {
            "event_name": "pageview",
            "name": None,
            "page_path": site.first_pageview_path,
            "timestamp": site.first_pageview_at.replace(microsecond=0).isoformat() + "Z",
        }
        body["dashboard_url"] = url_for("dashboard.overview", site_id=site.id)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/origins", methods=["POST"])
@login_required
def add_origin(site_id: int):
    """Allow one more origin to send the site's browser events."""
    site = site_for(site_id, "admin")
    form = OriginForm()
    if form.validate_on_submit():
        try:
            added = settings.add_origin(site, form.origin.data)
        except InvalidOrigin as exc:
            form.origin.errors.append(str(exc))
        else:
            audit.record(site, current_user, "settings_changed", "allowed origins", added=added)
            db.session.commit()
            flash(f"{added} may now send events.", "success")
            return redirect(url_for(".show", site_id=site.id))
    return _render(site, form, 400)


@bp.route("/origins/remove", methods=["POST"])
@login_required
def remove_origin(site_id: int):
    """Stop accepting browser events from an added origin."""
    site = site_for(site_id, "admin")
    form = OriginForm()
    if form.validate_on_submit():
        try:
            removed = settings.remove_origin(site, form.origin.data)
        except InvalidOrigin as exc:
            flash(str(exc), "error")
        else:
            audit.record(site, current_user, "settings_changed", "allowed origins", removed=removed)
            db.session.commit()
            flash(f"{removed} may no longer send events.", "success")
    return redirect(url_for(".show", site_id=site.id))


@bp.route("/do-not-track", methods=["POST"])
@login_required
def do_not_track(site_id: int):
    """Turn on or off skipping visitors who ask not to be tracked."""
    site = site_for(site_id, "admin")
    form = DntForm()
    if form.validate_on_submit():
        site.respect_dnt = form.respect.data == "on"
        audit.record(
            site, current_user, "settings_changed", "do-not-track", respect=site.respect_dnt
        )
        db.session.commit()
        state = "skipped" if site.respect_dnt else "counted"
        flash(
            f"Visitors who send Do-Not-Track or Global Privacy Control are now {state}.", "success"
        )
    return redirect(url_for(".show", site_id=site.id))


@bp.route("/visitor-ids", methods=["POST"])
@login_required
def visitor_ids(site_id: int):
    """Choose cookieless (the default) or persistent visitor ids for the site's browsers."""
    site = site_for(site_id, "admin")
    form = VisitorIdsForm()
    if form.validate_on_submit():
        site.visitor_ids = form.mode.data
        audit.record(site, current_user, "settings_changed", "visitor ids", mode=site.visitor_ids)
        db.session.commit()
        flash(
            f"Visitor ids are now {site.visitor_ids}: copy the snippet again into your pages.",
            "success",
        )
    else:
        flash("Choose cookieless or persistent visitor ids.", "error")
    return redirect(url_for(".show", site_id=site.id))


@bp.route("/site-key", methods=["POST"])
@login_required
def regenerate_key(site_id: int):
    """Replace the site key: pages with the old snippet stop being counted at once."""
    site = site_for(site_id, "admin")
    if EmptyForm().validate_on_submit():
        settings.regenerate_site_key(site)
        audit.record(site, current_user, "settings_changed", "site key regenerated")
        db.session.commit()
        flash("The site key is new: paste the new snippet into your pages.", "success")
    return redirect(url_for(".show", site_id=site.id))
