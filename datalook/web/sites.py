"""Sites: list the sites one is a member of (with the role), add one."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from .. import erasure
from ..accounts import members
from ..accounts.access import site_for
from .forms.accounts import SiteForm
from .forms.teams import DeleteSiteForm

bp = Blueprint("sites", __name__, url_prefix="/sites")


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    """List the user's sites and add a new one."""
    form = SiteForm()
    if form.validate_on_submit():
        site = members.new_site(current_user, form.domain.data)
        if site is None:
            form.domain.errors.append("You have already added this site.")
        else:
            flash(f"{site.domain} is added. Next: send your first event.", "success")
            return redirect(url_for("dashboard.overview", site_id=site.id))
    status = 400 if form.errors else 200
    sites = members.memberships(current_user.id)
    return render_template("sites/index.html", form=form, sites=sites), status


@bp.route("/<int:site_id>/delete", methods=["GET", "POST"])
@login_required
def delete(site_id: int):
    """Delete the site and all its data, confirmed by typing its domain (owners only)."""
    site = site_for(site_id, "owner")
    form = DeleteSiteForm()
    if form.validate_on_submit():
        if (form.confirm.data or "").strip().lower() != site.domain:
            form.confirm.errors.append(
                f"Type {site.domain} exactly to confirm; nothing was deleted."
            )
        else:
            domain = site.domain
            count = erasure.delete_site(site, current_user)
            flash(f"{domain} is deleted, with its {count} events.", "success")
            return redirect(url_for(".index"))
    status = 400 if form.errors else 200
    return render_template("sites/delete.html", site=site, form=form), status
