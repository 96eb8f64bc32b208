"""CLI of the reports: `flask analytics rebuild|catch-up` and `flask demo seed`."""

from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..analytics import catch_up as derive
from ..analytics import worker
from ..analytics.rollups import fold as summaries
from ..extensions import db
from ..keys import apikeys
from . import demo_seed as seed
from . import site_by_domain

analytics = AppGroup("analytics", help="Maintain the report summaries.")
demo = AppGroup("demo", help="Demo data.")


@analytics.command("rebuild")
@click.option("--site", "domain", required=True)
def analytics_rebuild(domain: str) -> None:
    """Recompute a site's summaries from its raw events (safe while events arrive)."""
    site = site_by_domain(domain)
    started = time.monotonic()
    summaries.catch_up(db.engine, current_app.instance_path)
    count = summaries.rebuild_site(db.engine, current_app.instance_path, site.id)
    click.echo(f"Rebuilt {site.domain}: {count} events in {time.monotonic() - started:.1f} s")


@analytics.command("fold")
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=worker.INTERVAL_S,
    show_default=True,
    help="Seconds between folds.",
)
def analytics_fold(interval: float) -> None:
    """Fold new events into the report summaries every --interval seconds, until stopped."""
    folder = worker.folder_for(current_app._get_current_object())  # type: ignore[attr-defined]
    if folder is None:
        raise click.ClickException("this app has no database")
    folder.interval = interval
    folder.run()


@analytics.command("catch-up")
def analytics_catch_up() -> None:
    """Fold every event stored since the last fold."""
    count = summaries.catch_up(db.engine, current_app.instance_path)
    click.echo(f"Folded {count} events")


@demo.command("seed")
@click.option("--site", "domain", required=True)
@click.option("--events", type=click.IntRange(1, 100_000_000), required=True)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--visitors", type=click.IntRange(1), help="Distinct users (default: events/10).")
def demo_seed(domain: str, events: int, days: int, visitors: int | None) -> None:
    """Write realistic generated sessions of events into a site, then fold them into the
    summaries and derive sessions and saved funnels."""
    site = site_by_domain(domain)
    # Demo events come from a key of the site, as server events do.
    key_id = (
        site.api_keys[0].id if site.api_keys else apikeys.create_key(site, "Demo data", None).key.id
    )
    site_id, shown = site.id, site.domain
    engine = db.engine
    db.session.close()
    started = time.monotonic()
    written = seed.write(engine, site_id, key_id, events, days, visitors or max(1, events // 10))
    wrote = time.monotonic() - started
    folded = summaries.catch_up(engine, current_app.instance_path, batch=20_000)
    folded_at = time.monotonic()
    # Sessions and saved funnels too: the first page view must not pay for the whole seed.
    derived = derive.catch_up_all(db.session())
    db.session.close()
    done = time.monotonic()
    click.echo(
        f"Seeded {written} events into {shown} in {wrote:.1f} s;"
        f" folded {folded} into the summaries in {folded_at - started - wrote:.1f} s;"
        f" derived sessions and saved funnels ({derived['sessions']} events)"
        f" in {done - folded_at:.1f} s; {done - started:.1f} s in all"
    )


def register(app: Flask) -> None:
    """Add the analytics and demo groups."""
    for group in (analytics, demo):
        app.cli.add_command(group)
