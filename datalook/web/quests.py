"""Onboarding quests, and the "Send events from your backend" quest."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import select

from ..accounts.access import site_for
from ..extensions import db
from ..models import ApiKey, utcnow
from ..snippets import render as snippets
from . import show_once
from .quest_state import quests_for, server_events_done

bp = Blueprint("quests", __name__, url_prefix="/sites/<int:site_id>/quests")


@bp.route("/")
@login_required
def index(site_id: int):
    """List the onboarding quests and their state."""
    site = site_for(site_id, "read")
    return render_template("quests/index.html", site=site, quests=quests_for(site))


SUGGESTED_KEY_NAME = "Production server"


def _render_quest(site, form, status=200, existing=None):
    """Render the quest page: intro and key form, or the wait for the newest key's event."""
    newest = db.session.scalar(
        select(ApiKey)
        .where(ApiKey.site_id == site.id, ApiKey.active_at(utcnow()))
        .order_by(ApiKey.id.desc())
        .limit(1)
    )
    page = render_template(
        "quests/server_events.html",
        site=site,
        form=form,
        newest_key=newest,
        existing=existing,
        done=server_events_done(site),
        snippets=snippets.render(show_once.event_url(), None),
    )
    return page, status


@bp.route("/server-events")
@login_required
def server_events(site_id: int):
    """Explain server events and offer to create a key."""
    site = site_for(site_id, "admin")
    # Suggest the name the page's help text gives, unless a key of that name is active.
    taken = show_once.active_key_named(site, SUGGESTED_KEY_NAME) is not None
    form = show_once.new_form(name="" if taken else SUGGESTED_KEY_NAME)
    return _render_quest(site, form)


@bp.route("/server-events/keys", methods=["POST"])
@login_required
def create_key(site_id: int):
    """Create a key and show its token once, with snippets and the live wait."""
    return show_once.create_from_form(site_for(site_id, "admin"), _render_quest)
