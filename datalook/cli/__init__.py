"""Command-line interface: `flask users|sites|keys|events ...`.

Every refusal exits non-zero with one line on stderr; `keys create` and `keys rotate`
print the token alone on stdout so scripts can capture it.
"""

from __future__ import annotations

import getpass
import sys
from datetime import date
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import erasure, exporting
from ..accounts.domains import InvalidDomain, normalise_domain
from ..accounts.emails import InvalidEmail, normalise_email
from ..accounts.passwords import MIN_PASSWORD_LENGTH, password_problem
from ..analytics.money import is_currency
from ..analytics.ranges import UnknownZone, local_midnight_utc, site_zone, zone
from ..browser import settings as browser_settings
from ..browser.origins import InvalidOrigin
from ..browser.script import snippet
from ..extensions import db
from ..keys import apikeys
from ..models import ApiKey, Site, User
from ..ratelimit.limit_text import validate_limit

users = AppGroup("users", help="Manage user accounts.")
sites = AppGroup("sites", help="Manage sites.")
keys = AppGroup("keys", help="Manage API keys.")
events = AppGroup("events", help="Export, erase and delete stored events.")


def fail(message: str) -> NoReturn:
    """Print a one-line refusal on stderr and exit with status 1."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def site_by_domain(domain: str) -> Site:
    """Find the site for a domain as typed, or fail."""
    try:
        normal = normalise_domain(domain)
    except InvalidDomain as exc:
        fail(str(exc))
    found = db.session.scalars(select(Site).where(Site.domain == normal)).all()
    if not found:
        fail(f"no site {normal!r}")
    if len(found) > 1:
        fail(f"several accounts have a site {normal!r}; use the dashboard")
    return found[0]


def _key_by_id(key_id: str) -> ApiKey:
    """Find a key by its public key_id (the part after dl_live_), or fail."""
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None:
        fail(f"no key {key_id[:40]!r}")
    return key


@users.command("create")
@click.argument("email")
@click.option(
    "--password",
    required=True,
    help=f"At least {MIN_PASSWORD_LENGTH} characters, hard to guess (zxcvbn score 3 or more).",
)
def users_create(email: str, password: str) -> None:
    """Create a user account."""
    try:
        normal = normalise_email(email)
    except InvalidEmail as exc:
        fail(f"{email[:60]!r} is not an email address: {exc}")
    problem = password_problem(password, normal)
    if problem:
        fail(f"the password is refused: {problem}")
    user = User(email=normal)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        fail(f"a user {normal!r} already exists")
    click.echo(f"Created user {normal}")


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
    db.session.add(Site(owner_id=user.id, domain=normal))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
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
def sites_set(
    domain: str,
    timezone: str | None,
    currency: str | None,
    add_origins: tuple,
    remove_origins: tuple,
    respect_dnt: bool | None,
) -> None:
    """Change a site's settings (stored events are never changed by them)."""
    site = site_by_domain(domain)
    if not (timezone or currency or add_origins or remove_origins or respect_dnt is not None):
        fail("give at least one setting to change")
    _set_report_options(site, timezone, currency)
    _set_browser_options(site, add_origins, remove_origins, respect_dnt)
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
    base = current_app.config["PUBLIC_URL"]
    if not base:
        base = f"http://127.0.0.1:{current_app.config['PORT']}"
        click.echo(f"PUBLIC_URL is not set: the snippet points at {base}", err=True)
    click.echo(snippet(base, site.site_key or "", site.respect_dnt))


@sites.command("regenerate-site-key")
@click.argument("domain")
def sites_regenerate_site_key(domain: str) -> None:
    """Replace the site's public browser key (the old one stops working); print the snippet."""
    site = site_by_domain(domain)
    browser_settings.regenerate_site_key(site)
    db.session.commit()
    click.echo(f"{site.domain}: new site key; paste the new snippet", err=True)
    click.get_current_context().invoke(sites_snippet, domain=domain)


@keys.command("create")
@click.option("--site", "domain", required=True)
@click.option("--name", required=True)
@click.option("--test", is_flag=True, help="A test key (dl_test_…): its events count in no report.")
def keys_create(domain: str, name: str, test: bool) -> None:
    """Create an API key and print its token (shown only this once)."""
    site = site_by_domain(domain)
    try:
        created = apikeys.create_key(site, name, None, kind="test" if test else "live")
    except apikeys.KeyRefused as exc:
        fail(str(exc))
    click.echo(created.token)


@keys.command("list")
@click.option("--site", "domain", required=True)
def keys_list(domain: str) -> None:
    """List a site's keys (masked; secrets are never stored)."""
    site = site_by_domain(domain)
    for key in site.api_keys:
        click.echo(
            "\t".join(
                [
                    key.key_id,
                    key.kind,
                    key.name,
                    key.status(),
                    key.rate_limit or "default",
                    f"created {key.created_at:%Y-%m-%d %H:%M}",
                    f"last used {key.last_used_at:%Y-%m-%d %H:%M}"
                    if key.last_used_at
                    else "never used",
                ]
            )
        )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    key = _key_by_id(key_id)
    apikeys.revoke_key(key)
    click.echo(f"Revoked {key.key_id}", err=True)


@keys.command("rotate")
@click.argument("key_id")
@click.option(
    "--expire-old-in",
    type=click.Choice(list(apikeys.GRACE_PERIODS)),
    default="24h",
    show_default=True,
)
def keys_rotate(key_id: str, expire_old_in: str) -> None:
    """Create a replacement key and print its token; the old one expires as chosen."""
    key = _key_by_id(key_id)
    try:
        created = apikeys.rotate_key(key, expire_old_in, None)
    except apikeys.KeyRefused as exc:
        fail(str(exc))
    click.echo(created.token)


@keys.command("set-limit")
@click.argument("key_id")
@click.argument("limit")
def keys_set_limit(key_id: str, limit: str) -> None:
    """Set a key's rate limit, e.g. "2000 per 10 seconds", or "default"."""
    key = _key_by_id(key_id)
    if limit.strip().lower() == "default":
        apikeys.set_limit(key, None)
    else:
        try:
            apikeys.set_limit(key, validate_limit(limit))
        except ValueError as exc:
            fail(str(exc))
    click.echo(f"{key.key_id}: {key.rate_limit or 'default'}", err=True)


@events.command("export")
@click.option("--site", "domain", required=True)
def events_export(domain: str) -> None:
    """Write every stored event of a site as JSON Lines on stdout."""
    site = site_by_domain(domain)
    for line in exporting.export_lines(site.id):
        click.echo(line)


def _actor() -> str:
    """Who runs this command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli"


@events.command("erase")
@click.option("--site", "domain", required=True)
@click.option("--visitor", required=True, help="The success_user_id whose events to erase.")
def events_erase(domain: str, visitor: str) -> None:
    """Erase every event of one success_user_id (logged: who, when, how many)."""
    site = site_by_domain(domain)
    try:
        count = erasure.erase_visitor(site, visitor, _actor())
    except erasure.ErasureRefused as exc:
        fail(str(exc))
    click.echo(f"Erased {count} events of that visitor from {site.domain}", err=True)


@events.command("delete")
@click.option("--site", "domain", required=True)
@click.option("--before", "before", required=True, help="YYYY-MM-DD, in the site's time zone.")
def events_delete(domain: str, before: str) -> None:
    """Delete the events that occurred before a day (retention), logged like an erasure."""
    site = site_by_domain(domain)
    try:
        day = date.fromisoformat(before)
    except ValueError:
        fail(f"--before must be a date YYYY-MM-DD, got {before[:40]!r}")
    tz = site_zone(site.timezone)  # as the reports cut days (UTC for a zone unknown here)
    cutoff = local_midnight_utc(day, tz)
    count = erasure.delete_before(site, cutoff, _actor())
    click.echo(f"Deleted {count} events of {site.domain} before {day} ({tz.key})", err=True)


def register(app: Flask) -> None:
    """Add the command groups to the app's CLI."""
    from . import analytics as analytics_cli

    for group in (users, sites, keys, events):
        app.cli.add_command(group)
    analytics_cli.register(app)
