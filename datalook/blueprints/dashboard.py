"""The dashboard of one site: quests, headline figures, success rules, recent events."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from .. import stats
from ..access import owned_site_or_404
from ..quest_state import quests_for

bp = Blueprint("dashboard", __name__, url_prefix="/sites/<int:site_id>")


@bp.route("/")
@login_required
def overview(site_id: int):
    """Show the site's dashboard."""
    site = owned_site_or_404(site_id)
    figures = stats.overview(site.id)
    return render_template(
        "dashboard/overview.html",
        site=site,
        quests=quests_for(site),
        figures=figures,
        rules=stats.success_rules(site.id),
        events=stats.recent_events(site.id),
    )
