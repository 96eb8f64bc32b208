"""`flask sites ...`: sites, their report and browser settings, their snippet."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import select

from ..accounts import members
from ..accounts.domains import InvalidDomain, normalise_domain
from ..analytics.money import is_currency
from ..analytics.ranges import UnknownZone, zone
from ..browser import settings as browser_settings
from ..browser.origins import InvalidOrigin
from ..browser.script import snippet
from ..config import served_url
from ..extensions import db
from ..models import VISITOR_IDS, Site, User
from .common import CommandGroup, cli_actor, fail, site_by_domain

sites = CommandGroup("sites", help="Manage sites.")


@sites.command("create")
@click.argument("domain")
@click.option("--owner", required=True, help="Email of the owning user.")
def sites_create(domain: str, owner: str) -> None:
    """Add a site for a user."""
    user = db.session.scalar(select(User).where(User.email == User.normalise_email(owner)))
    if user is None:
        fail(f"no user {owner[:60]!r}")
    try:
        normal = normalise_domain(domain)
    except InvalidDomain as exc:
        fail(str(exc))
    if members.new_site(user, normal, cli_actor()) is None:
        fail(f"{user.email} already has a site {normal!r}")
    click.echo(f"Created site {normal}")


@sites.command("set")
@click.argument("domain")
@click.option("--timezone", "timezone", help="Report time zone, an IANA name: Europe/Berlin.")
@click.option("--currency", help="Report currency, an ISO 4217 code: EUR.")
@click.option(
    "--allowed-origin",
    "add_origins",
    multiple=True,
    metavar="URL",
    help="Also accept browser events from this origin, e.g. http://localhost:3000 (repeatable).",
)
@click.option(
    "--remove-origin", "remove_origins", multiple=True, metavar="URL", help="Stop accepting one."
)
@click.option(
    "--respect-dnt/--ignore-dnt",
    default=None,
    help="Skip browser events of visitors who send Do-Not-Track or Global Privacy Control.",
)
@click.option(
    "--visitor-id",
    "visitor_ids",
    type=click.Choice(VISITOR_IDS),
    help="cookieless (the default: no cookie, a new id every day) or persistent (a random "
    "first-party id kept by the script across days; in the EU it needs the visitor's consent).",
)
def sites_set(
    domain: str,
    timezone: str | None,
    currency: str | None,
    add_origins: tuple,
    remove_origins: tuple,
    respect_dnt: bool | None,
    visitor_ids: str | None,
) -> None:
    """Change a site's settings (stored events are never changed by them)."""
    site = site_by_domain(domain)
    browser = add_origins or remove_origins or respect_dnt is not None or visitor_ids
    if not (timezone or currency or browser):
        fail("give at least one setting to change")
    _set_report_options(site, timezone, currency)
    _set_browser_options(site, add_origins, remove_origins, respect_dnt)
    if visitor_ids is not None:
        site.visitor_ids = visitor_ids
        click.echo(
            f"{site.domain}: {visitor_ids} visitor ids; print the snippet again"
            " (flask sites snippet) and paste it into your pages",
            err=True,
        )
    db.session.commit()


def _set_report_options(site: Site, timezone: str | None, currency: str | None) -> None:
    """Apply `sites set`'s report options (time zone, currency) to a site."""
    if timezone is not None:
        try:
            zone(timezone)
        except UnknownZone:
            fail(f"{timezone[:60]!r} is not an IANA time zone name")
        site.timezone = timezone
    if currency is not None:
        if not is_currency(currency.upper()):
            fail(f"{currency[:20]!r} is not an ISO 4217 currency code")
        site.currency = currency.upper()
    if timezone is not None or currency is not None:
        click.echo(f"{site.domain}: timezone {site.timezone}, currency {site.currency}")


def _set_browser_options(
    site: Site, add_origins: tuple, remove_origins: tuple, respect_dnt: bool | None
) -> None:
    """Apply `sites set`'s browser-SDK options (origins, Do-Not-Track) to a site."""
    try:
        for origin in add_origins:
            added = browser_settings.add_origin(site, origin)
            click.echo(f"{site.domain}: allowed {added}", err=True)
        for origin in remove_origins:
            removed = browser_settings.remove_origin(site, origin)
            click.echo(f"{site.domain}: no longer allowed {removed}", err=True)
    except InvalidOrigin as exc:
        fail(str(exc))
    if respect_dnt is not None:
        site.respect_dnt = respect_dnt
        state = "on" if respect_dnt else "off"
        click.echo(f"{site.domain}: respect Do-Not-Track {state}", err=True)


@sites.command("snippet")
@click.argument("domain")
def sites_snippet(domain: str) -> None:
    """Print the site's browser <script> tag, alone on stdout."""
    site = site_by_domain(domain)
    base = served_url(current_app.config)
    if not current_app.config["PUBLIC_URL"]:
        click.echo(f"PUBLIC_URL is not set: the snippet points at {base}", err=True)
    persistent = site.visitor_ids == "persistent"
    click.echo(snippet(base, site.site_key or "", site.respect_dnt, persistent))


@sites.command("regenerate-site-key")
@click.argument("domain")
def sites_regenerate_site_key(domain: str) -> None:
    """Replace the site's public browser key (the old one stops working); print the snippet."""
    site = site_by_domain(domain)
    browser_settings.regenerate_site_key(site)
    db.session.commit()
    click.echo(f"{site.domain}: new site key; paste the new snippet", err=True)
    click.get_current_context().invoke(sites_snippet, domain=domain)
