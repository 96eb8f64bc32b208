"""Shared dashboards: an owner's links (list, create, revoke) and the public page at
/share/<token>, a read-only dashboard for people without an account.

The public page authenticates by its token alone: the link becomes a principal with a
viewer's rights on its one site (accounts.access), and the page renders the dashboard's
reports through the dashboard's own function and partial (dashboard.report_context,
dashboard/_reports.html), without keys, the live view, visitor ids, settings, Details or
CSV, or links to them; its date ranges and filters work through the link's own URL. Every
answer of /share/ says noindex, and may be framed only by the origins its owner listed (a
CSP frame-ancestors list; every other page keeps X-Frame-Options: DENY).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    url_for,
)
from flask_login import login_required

from ..accounts.access import SHARE, Principal, current_principal, site_for, site_or_404
from ..analytics import freshness
from ..analytics.query import ReportQuery
from ..extensions import db
from ..models import SharedLink
from . import share_links
from .dashboard import page_query, report_context
from .forms.accounts import EmptyForm
from .forms.shares import ShareForm, SharePasswordForm, parse_origins
from .security_headers import NO_FRAMING, page_csp

bp = Blueprint("shares", __name__)


# --- the owner's links ------------------------------------------------------------------------


def _index(site, form, status=200):
    """The site's links with the create form."""
    page = render_template(
        "shares/index.html",
        site=site,
        links=share_links.site_links(site),
        form=form,
        revoke_form=EmptyForm(),
    )
    return page, status


@bp.route("/sites/<int:site_id>/shares/")
@login_required
def index(site_id: int):
    """List the site's shared links."""
    return _index(site_for(site_id, "owner"), ShareForm())


@bp.route("/sites/<int:site_id>/shares/", methods=["POST"])
@login_required
def create(site_id: int):
    """Create a link and show its URL once."""
    site = site_for(site_id, "owner")
    form = ShareForm()
    if not form.validate_on_submit():
        return _index(site, form, 400)
    origins = parse_origins(form.frame_ancestors.data or "")
    created = share_links.create(site, form.name.data, form.password.data or None, origins)
    response = make_response(
        render_template(
            "shares/created.html",
            site=site,
            link=created.link,
            url=url_for("shares.view", token=created.token, _external=True),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/sites/<int:site_id>/shares/<int:link_id>/revoke", methods=["POST"])
@login_required
def revoke(site_id: int, link_id: int):
    """Revoke a link: its URL answers 404 from the next request on."""
    site = site_for(site_id, "owner")
    link = db.session.get(SharedLink, link_id)
    if link is None or link.site_id != site.id:
        abort(404)
    if not EmptyForm().validate_on_submit():
        abort(400)
    share_links.revoke(link)
    flash(f"The shared link “{link.name}” is revoked; its URL no longer opens.", "success")
    return redirect(url_for("shares.index", site_id=site.id))


# --- the public page --------------------------------------------------------------------------


def _link_or_404(token: str) -> SharedLink:
    """The active link of the URL's token, or 404 (unknown and revoked alike)."""
    link = share_links.active_link(token)
    if link is None:
        abort(404)
    return link


def _shared_headers(response, link: SharedLink):
    """noindex, no caching by others, and framing only by the origins the owner listed."""
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Security-Policy"] = page_csp(link.frame_ancestors or NO_FRAMING)
    return response


@bp.route("/share/<token>")
def view(token: str):
    """The read-only dashboard of a link (or its password form)."""
    link = _link_or_404(token)
    if not share_links.unlocked(link):
        return _password_page(token, link, SharePasswordForm(), 200)
    g.principal = Principal(None, SHARE, link.site_id)
    site_or_404(current_principal(), link.site_id, "read")
    current = freshness.catch_up_stats(freshness.report_deadline())
    site = site_or_404(current_principal(), link.site_id, "read")
    page_url = lambda **args: url_for("shares.view", token=token, **args)  # noqa: E731
    query = page_query(site, page_url)
    if not isinstance(query, ReportQuery):
        return _shared_headers(query, link)
    context = report_context(site, query, current, page_url, shared=True)
    page = make_response(render_template("shares/view.html", **context, link=link))
    return _shared_headers(page, link)


@bp.route("/share/<token>", methods=["POST"])
@share_links.share_password_limit
def unlock(token: str):
    """Check the password of a protected link; too many wrong ones make it wait."""
    link = _link_or_404(token)
    form = SharePasswordForm()
    if not form.validate_on_submit():
        return _password_page(token, link, form, 400)
    wait = share_links.link_wait(link)
    if wait:
        form.password.errors.append(
            f"Too many wrong passwords for this link. Please wait {max(1, -(-wait // 60))} "
            "minute(s)."
        )
        response = _password_page(token, link, form, 429)
        response.headers["Retry-After"] = str(wait)
        return response
    if not share_links.check(link, form.password.data):
        form.password.errors.append("That password is not right.")
        return _password_page(token, link, form, 400)
    response = redirect(url_for("shares.view", token=token))
    return _shared_headers(share_links.remember(response, link), link)


def _password_page(token: str, link: SharedLink, form: SharePasswordForm, status: int):
    """The password form of a protected link."""
    page = make_response(
        render_template("shares/password.html", token=token, form=form, link=link), status
    )
    return _shared_headers(page, link)
