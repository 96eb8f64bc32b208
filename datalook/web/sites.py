"""Sites: list, add, open."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..models import Site
from ..sql.connections import add_unique
from .forms.accounts import SiteForm

bp = Blueprint("sites", __name__, url_prefix="/sites")


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    """List the user's sites and add a new one."""
    form = SiteForm()
    if form.validate_on_submit():
        site = Site(owner_id=current_user.id, domain=form.domain.data)
        if not add_unique(db.session(), site):
            form.domain.errors.append("You have already added this site.")
        else:
            flash(f"{site.domain} is added. Next: send your first event.", "success")
            return redirect(url_for("dashboard.overview", site_id=site.id))
    status = 400 if form.errors else 200
    return render_template("sites/index.html", form=form, sites=current_user.sites), status
