"""A site's members page: members and their roles, invitations, leaving the site.

Every member sees who has access; owners invite (the link is shown once, and emailed when
SMTP_URL is set), re-send and revoke invitations, change roles and remove members.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user, login_required

from ..accounts import invitations, mail, members
from ..accounts.access import ROLE_SUMMARIES, granted, site_for
from ..keys import apikeys
from ..models import Invitation, Site, utcnow
from .forms.accounts import EmptyForm
from .forms.teams import InviteForm, RoleForm
from .show_once import base_url

log = logging.getLogger(__name__)

bp = Blueprint("members", __name__, url_prefix="/sites/<int:site_id>")


def _render(site: Site, form: InviteForm | None = None, status: int = 200, **shown):
    """The members page (with a just-issued link in `shown`, never cached)."""
    response = make_response(
        render_template(
            "members/index.html",
            site=site,
            members=members.members_of(site),
            invitations=invitations.listed(site) if granted("owner") else [],
            form=form or InviteForm(),
            role_form=RoleForm(),
            button=EmptyForm(),
            summaries=ROLE_SUMMARIES,
            mail_configured=bool(current_app.config.get("SMTP_URL")),
            now=utcnow(),
            **shown,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _role_helpers() -> dict:
    """`can(action)` in every template: whether the role this request found on its site
    allows the action (to show only the tabs and buttons that will work)."""
    return {"can": granted}


@bp.route("/members")
@login_required
def index(site_id: int):
    """Who has access to the site, and (for owners) the invitations."""
    return _render(site_for(site_id, "read"))


def invitation_link(token: str) -> str:
    """The full URL of an invitation's link."""
    return base_url() + url_for("invitation.show", token=token)


def _send(issued: invitations.Issued, site: Site) -> str | None:
    """Email the invitation when SMTP_URL is set: None when sent (or not configured),
    else why it failed (the link is still shown to copy)."""
    config = current_app.config
    if not config.get("SMTP_URL"):
        return None
    invitation = issued.invitation
    body = (
        f"{current_user.email} invites you to see {site.domain} on DataLook as {invitation.role}"
        f" ({ROLE_SUMMARIES[invitation.role]}).\n\n"
        f"Accept the invitation (valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC; you "
        f"log in or sign up as {invitation.email}):\n\n{invitation_link(issued.token)}\n"
    )
    try:
        mail.send(
            mail.SmtpServer.from_url(config["SMTP_URL"]),
            config["MAIL_FROM"],
            invitation.email,
            f"Join {site.domain} on DataLook",
            body,
        )
    except mail.MailError as exc:
        log.warning("invitation email to site %s not sent: %s", site.id, exc)
        return str(exc)
    invitations.mark_sent(invitation)
    return None


@bp.route("/members/invite", methods=["POST"])
@login_required
def invite(site_id: int):
    """Invite an email address with a role: show the link once, and email it."""
    site = site_for(site_id, "owner")
    form = InviteForm()
    if not form.validate_on_submit():
        return _render(site, form, 400)
    try:
        issued = invitations.create(site, form.email.data, form.role.data, current_user)
    except invitations.InvitationRefused as exc:
        form.email.errors.append(str(exc))
        return _render(site, form, 400)
    failure = _send(issued, site)
    return _render(
        site,
        issued_invitation=issued.invitation,
        link=invitation_link(issued.token),
        mail_error=failure,
    )


def _site_invitation(site: Site, invitation_id: int) -> Invitation:
    """One of the site's invitations, or 404."""
    found = invitations.site_invitation(site, invitation_id)
    if found is None:
        abort(404)
    return found


def _refuse(site: Site, message: str):
    """The members page again with the reason (400): nothing was changed."""
    flash(message, "error")
    return _render(site, status=400)


EXPIRED = "The form expired; reload the page and try again."


@bp.route("/invitations/<int:invitation_id>/resend", methods=["POST"])
@login_required
def resend(site_id: int, invitation_id: int):
    """Give an invitation a new link (the old one stops working) and send it again."""
    site = site_for(site_id, "owner")
    invitation = _site_invitation(site, invitation_id)
    if not EmptyForm().validate_on_submit():
        return _refuse(site, EXPIRED)
    try:
        issued = invitations.resend(invitation, current_user)
    except invitations.InvitationRefused as exc:
        return _refuse(site, str(exc))
    failure = _send(issued, site)
    return _render(
        site,
        issued_invitation=issued.invitation,
        link=invitation_link(issued.token),
        mail_error=failure,
    )


@bp.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
@login_required
def revoke(site_id: int, invitation_id: int):
    """Revoke an invitation: its link stops working at once."""
    site = site_for(site_id, "owner")
    invitation = _site_invitation(site, invitation_id)
    if not EmptyForm().validate_on_submit():
        return _refuse(site, EXPIRED)
    try:
        invitations.revoke(invitation, current_user)
    except invitations.InvitationRefused as exc:
        return _refuse(site, str(exc))
    flash(f"The invitation of {invitation.email} is revoked.", "success")
    return redirect(url_for(".index", site_id=site.id))


@bp.route("/members/<int:user_id>/role", methods=["POST"])
@login_required
def change_role(site_id: int, user_id: int):
    """Give a member another role (the last owner stays an owner)."""
    site = site_for(site_id, "owner")
    form = RoleForm()
    if not form.validate_on_submit():
        problems = [f"{name}: {'; '.join(errors)}" for name, errors in form.errors.items()]
        return _refuse(site, "Nothing changed. " + " ".join(problems))
    try:
        member = members.change_role(site, user_id, form.role.data, current_user)
    except members.MemberRefused as exc:
        return _refuse(site, str(exc))
    flash(f"{member.user.email} is now {member.role}.", "success")
    return redirect(url_for(".index", site_id=site.id))


@bp.route("/members/<int:user_id>/remove", methods=["POST"])
@login_required
def remove(site_id: int, user_id: int):
    """Remove a member: their very next request is refused."""
    site = site_for(site_id, "owner")
    if not EmptyForm().validate_on_submit():
        return _refuse(site, EXPIRED)
    try:
        email = members.remove_member(site, user_id, current_user)
    except members.MemberRefused as exc:
        return _refuse(site, str(exc))
    note = apikeys.keys_note(apikeys.active_keys_created_by(site, user_id))
    flash(f"{email} no longer has access to {site.domain}.{note}", "success")
    if user_id == current_user.id:
        return redirect(url_for("sites.index"))
    return redirect(url_for(".index", site_id=site.id))


@bp.route("/members/leave", methods=["POST"])
@login_required
def leave(site_id: int):
    """Leave the site (the last owner cannot)."""
    site = site_for(site_id, "read")
    if not EmptyForm().validate_on_submit():
        return _refuse(site, EXPIRED)
    try:
        members.remove_member(site, current_user.id, current_user, leaving=True)
    except members.MemberRefused as exc:
        return _refuse(site, str(exc))
    flash(f"You left {site.domain}.", "success")
    return redirect(url_for("sites.index"))
