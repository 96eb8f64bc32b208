"""`flask events ...`: export, erase and delete stored events."""

from __future__ import annotations

from datetime import date

import click

from .. import erasure, exporting
from ..analytics.ranges import local_midnight_utc, site_zone
from .common import CommandGroup, cli_actor, fail, site_by_domain

events = CommandGroup("events", help="Export, erase and delete stored events.")


@events.command("export")
@click.option("--site", "domain", required=True)
def events_export(domain: str) -> None:
    """Write every stored event of a site as JSON Lines on stdout."""
    site = site_by_domain(domain)
    for line in exporting.export_lines(site.id):
        click.echo(line)


@events.command("erase")
@click.option("--site", "domain", required=True)
@click.option("--visitor", required=True, help="The success_user_id whose events to erase.")
def events_erase(domain: str, visitor: str) -> None:
    """Erase every event of one success_user_id (logged: who, when, how many)."""
    site = site_by_domain(domain)
    try:
        count = erasure.erase_visitor(site, visitor, cli_actor())
    except erasure.ErasureRefused as exc:
        fail(str(exc))
    if not count:
        click.echo(f"No events of that visitor in {site.domain}: nothing to erase", err=True)
        return
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
    count = erasure.delete_before(site, cutoff, cli_actor())
    click.echo(f"Deleted {count} events of {site.domain} before {day} ({tz.key})", err=True)
