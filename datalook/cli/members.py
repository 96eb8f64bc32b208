"""`flask members ...`: who may see a site, and with which role."""

from __future__ import annotations

import click
from sqlalchemy import select

from ..accounts import members as membership
from ..extensions import db
from ..keys import apikeys
from ..models import ROLE_VIEWER, ROLES, User
from .common import CommandGroup, cli_actor, fail, site_by_domain

members = CommandGroup("members", help="Add, list and remove a site's members.")


def _user(email: str) -> User:
    """The account with this email, or fail."""
    user = db.session.scalar(select(User).where(User.email == User.normalise_email(email)))
    if user is None:
        fail(f"no user {email[:60]!r}: they sign up first (or use `flask users create`)")
    return user


@members.command("add")
@click.argument("domain")
@click.argument("email")
@click.option("--role", default=ROLE_VIEWER, show_default=True, help="owner, admin or viewer.")
def members_add(domain: str, email: str, role: str) -> None:
    """Make an existing account a member of a site."""
    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}, got {role[:20]!r}")
    site = site_by_domain(domain)
    user = _user(email)
    try:
        membership.add_member(site, user, role, cli_actor())
    except membership.MemberRefused as exc:
        fail(str(exc))
    click.echo(f"{user.email} is now {role} of {site.domain}", err=True)


@members.command("list")
@click.argument("domain")
def members_list(domain: str) -> None:
    """Print the site's members, one `EMAIL<TAB>ROLE` line each, owners first."""
    site = site_by_domain(domain)
    for member in membership.members_of(site):
        click.echo(f"{member.user.email}\t{member.role}")


@members.command("remove")
@click.argument("domain")
@click.argument("email")
def members_remove(domain: str, email: str) -> None:
    """Remove a member (not the last owner); their next request is refused."""
    site = site_by_domain(domain)
    user = _user(email)
    try:
        membership.remove_member(site, user.id, cli_actor())
    except membership.MemberRefused as exc:
        fail(str(exc))
    note = apikeys.keys_note(apikeys.active_keys_created_by(site, user.id))
    click.echo(f"{user.email} no longer has access to {site.domain}.{note}", err=True)
