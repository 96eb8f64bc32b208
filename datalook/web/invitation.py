"""Accepting an invitation: the page its link opens, for the invitee.

Anyone with the link sees the site, the role and the address it is for; accepting needs
being logged in with that address (sign up or log in from the page, which comes back here).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..accounts import invitations
from ..accounts.access import ROLE_SUMMARIES
from ..models import Invitation
from .forms.accounts import EmptyForm

bp = Blueprint("invitation", __name__, url_prefix="/invitations")


def _found(token: str) -> Invitation:
    """The invitation of a link, or a 404 that says what may have happened."""
    found = invitations.find(token)
    if found is None:
        abort(
            404,
            description="This invitation link is not valid: check that it was copied whole, "
            "or ask for a new one (re-sending an invitation replaces its link).",
        )
    return found


def _render(invitation: Invitation, token: str, status: int = 200, problem: str | None = None):
    """The invitation's page (never cached: it is reached through a secret link)."""
    user = current_user if current_user.is_authenticated else None
    problem = problem or invitations.refusal(invitation, user)
    here = url_for(".show", token=token)
    response = make_response(
        render_template(
            "members/invitation.html",
            invitation=invitation,
            problem=problem,
            summary=ROLE_SUMMARIES.get(invitation.role, ""),
            form=EmptyForm(),
            signup_url=url_for("auth.signup", next=here, email=invitation.email),
            login_url=url_for("auth.login", next=here),
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/<token>")
def show(token: str):
    """Show the site, the role and the address, with the way to accept."""
    invitation = _found(token)
    state = invitation.status()
    return _render(invitation, token, 410 if state != "pending" else 200)


@bp.route("/<token>", methods=["POST"])
@login_required
def accept(token: str):
    """Accept the invitation as the logged-in user (who must have its address)."""
    invitation = _found(token)
    if not EmptyForm().validate_on_submit():
        return _render(invitation, token, 400, "The form expired; reload the page and try again.")
    try:
        member = invitations.accept(invitation, current_user)
    except invitations.InvitationRefused as exc:
        status = 403 if invitation.status() == "pending" else 410
        return _render(invitation, token, status, str(exc))
    flash(f"Welcome to {invitation.site.domain}: you are {member.role}.", "success")
    return redirect(url_for("dashboard.overview", site_id=invitation.site_id))
