"""`flask analytics ...`: the report summaries (rebuild, fold, catch-up)."""

from __future__ import annotations

import time

import click
from flask import current_app

from ..analytics import supervisor, worker
from ..analytics.rollups import fold as summaries
from ..extensions import db
from .common import CommandGroup, site_by_domain

analytics = CommandGroup("analytics", help="Maintain the report summaries.")


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
