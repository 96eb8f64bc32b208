"""The live view (events and refused requests as they arrive), test events, and erasure."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import erasure, live
from ..accounts.access import site_for
from ..extensions import db
from ..models import Event
from .forms.accounts import EmptyForm, EraseForm

bp = Blueprint("live", __name__, url_prefix="/sites/<int:site_id>")


@bp.app_template_global()
def test_events_only(site_id: int) -> int:
    """For the dashboard's notice: the site's test events when it has nothing counted."""
    return live.test_events_only(site_id)


@bp.route("/live")
@login_required
def page(site_id: int):
    """The live view on a page of its own."""
    site = site_for(site_id, "read")
    return render_template("live/page.html", site=site)


@bp.route("/live/clear-test", methods=["POST"])
@login_required
def clear_test(site_id: int):
    """Delete every test event of the site in one click."""
    site = site_for(site_id, "admin")
    form = EmptyForm()
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("live.page", site_id=site.id))
    count = erasure.clear_test_events(site, current_user)
    flash(f"Deleted {count} test event{'s' if count != 1 else ''}.", "success")
    # Back to the page the button was on (a fixed choice: never a URL from the form).
    back = "live.privacy" if request.form.get("back") == "privacy" else "live.page"
    return redirect(url_for(back, site_id=site.id))


@bp.route("/privacy")
@login_required
def privacy(site_id: int):
    """Erase a visitor, clear test events, and the log of past deletions."""
    site = site_for(site_id, "owner")
    return _render_privacy(site, EraseForm())


def _render_privacy(site, form, status=200, nothing_for=None):
    """The privacy page with its forms and the audit log (and, after an erasure asked for a
    user id without events, the notice that there is nothing to erase)."""
    return render_template(
        "live/privacy.html",
        site=site,
        form=form,
        nothing_for=nothing_for,
        clear_form=EmptyForm(),
        audit=erasure.recent_audit(site),
    ), status


@bp.route("/privacy/erase", methods=["POST"])
@login_required
def erase(site_id: int):
    """Confirm, then erase every event of one success_user_id."""
    site = site_for(site_id, "owner")
    form = EraseForm()
    if not form.validate_on_submit():
        return _render_privacy(site, form, 400)
    user_id = form.user_id.data
    count = db.session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.site_id == site.id, Event.visitor_id == f"u:{user_id}")
    )
    if not count:
        # Nothing to confirm and nothing to log: say so on the form (the id may be mistyped).
        return _render_privacy(site, form, nothing_for=user_id)
    if form.confirmed.data != "yes":
        return render_template("live/erase_confirm.html", site=site, form=form, count=count)
    try:
        count = erasure.erase_visitor(site, user_id, current_user)
    except erasure.ErasureRefused as exc:
        form.user_id.errors.append(str(exc))
        return _render_privacy(site, form, 400)
    flash(f"Erased {count} event{'s' if count != 1 else ''} of that visitor.", "success")
    return redirect(url_for("live.privacy", site_id=site.id))
