"""`flask analytics ...`: the report summaries and derived tables (rebuild, fold, catch-up)."""

from __future__ import annotations

import time

import click
from flask import current_app
from sqlalchemy import select

from ..analytics import rebuild, supervisor, worker
from ..analytics.rollups import fold as summaries
from ..extensions import db
from ..lifecycle import freeze_loaded_objects
from ..models import Site
from . import store as store_commands
from .common import CommandGroup, fail, site_by_domain

analytics = CommandGroup("analytics", help="Maintain the report summaries and derived tables.")


@analytics.command("rebuild")
@click.option("--site", "domain", help="The site's domain.")
@click.option("--all", "every", is_flag=True, help="Every site.")
def analytics_rebuild(domain: str | None, every: bool) -> None:
    """Rebuild everything derived from a site's events from the events themselves: the
    summaries, the kind index, the sessions, the saved funnels' rows (safe while events
    arrive). The repair for any derived row that is wrong."""
    if bool(domain) == every:
        fail("give --site DOMAIN or --all")
    if every:
        sites = [(s.id, s.domain) for s in db.session.scalars(select(Site).order_by(Site.id))]
    else:
        site = site_by_domain(domain or "")
        sites = [(site.id, site.domain)]
    for site_id, name in sites:
        started = time.monotonic()
        done = rebuild.rebuild_site(db.session(), db.engine, current_app.instance_path, site_id)
        click.echo(
            f"Rebuilt {name}: {done.events} events in {time.monotonic() - started:.1f} s"
            f" (kind index: {done.filed} events, {done.sessions} sessions,"
            f" saved funnels: {done.derived} events)"
        )


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
    # A process that runs for days: its collections should walk what a fold makes, not
    # the app (lifecycle does the same in each server worker).
    freeze_loaded_objects()
    folder.run()


@analytics.command(
    "supervise", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("--name", default="analytics fold", show_default=True, help="Named in the log.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def analytics_supervise(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (the fold: `-- flask analytics fold ...`) and restart it whenever it
    exits, after a back-off of 1 s doubling to 30 s; until SIGTERM or SIGINT."""
    supervisor.run_until_signalled(supervisor.Supervisor(command, name))


@analytics.command("catch-up")
def analytics_catch_up() -> None:
    """Fold every event stored since the last fold."""
    count = summaries.catch_up(db.engine, current_app.instance_path)
    click.echo(f"Folded {count} events")


analytics.add_command(store_commands.store)
