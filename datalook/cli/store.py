"""`flask analytics store ...`: the columnar copy of the counted events (analytics.store)."""

from __future__ import annotations

import time
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select

from ..analytics.store import daily, gc, invalidate, session_files
from ..analytics.store.build import build
from ..extensions import db
from ..models import Site
from .common import CommandGroup, fail, site_by_domain

store = CommandGroup("store", help="Maintain the columnar copy of the counted events.")


def _directory() -> Path:
    """The app's store directory."""
    return Path(current_app.config["ANALYTICS_STORE_DIR"])


@store.command("build")
@click.option("--site", "domain", help="The site's domain.")
@click.option("--all", "every", is_flag=True, help="Every site.")
def store_build(domain: str | None, every: bool) -> None:
    """Build every missing segment of a site (or of every site) and the journeys' missing
    day files of its sessions now: what the fold process does a little at a time."""
    if bool(domain) == every:
        fail("give --site DOMAIN or --all")
    site_ids = None if every else [site_by_domain(domain or "").id]
    started = time.monotonic()
    seen = invalidate.catch_up(db.session())
    done = build(db.session(), _directory(), site_ids=site_ids)
    rolled = daily.backfill(db.session(), _directory(), site_ids=site_ids)
    days = session_files.build(db.session(), _directory(), site_ids=site_ids)
    click.echo(
        f"Built {done.built} segments and compacted {done.compacted} days"
        f" ({done.rows} rows, {done.files} files, {done.bytes / 1e6:.1f} MB)"
        f" in {time.monotonic() - started:.1f} s; {seen} new events checked,"
        f" {done.dropped} builds dropped (the events changed meanwhile);"
        f" {rolled} day rollups written for days built before;"
        f" {days.days} days of sessions written ({days.sessions} sessions,"
        f" {days.dropped} dropped)"
    )


@store.command("gc")
def store_gc() -> None:
    """Remove the files of segments that are no longer valid (after a grace period)."""
    removed = gc.collect(db.session(), _directory())
    removed += session_files.collect(db.session(), _directory())
    count = len(list(db.session.scalars(select(Site.id))))
    click.echo(f"Removed {removed} files ({count} sites)")
