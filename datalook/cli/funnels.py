"""`flask funnels catch-up`: derive sessions and saved funnels ahead of the reports."""

from __future__ import annotations

import click

from ..analytics import catch_up as derive
from ..extensions import db
from .common import CommandGroup

# No help text, as when this group was the funnels blueprint's own.
funnels = CommandGroup("funnels")


@funnels.command("catch-up")
def catch_up_command() -> None:
    """Derive sessions and every saved funnel's rows up to the newest events.

    Reports catch up by themselves before reading; running this every minute (cron, a
    timer) keeps that work small, and after saving a funnel on a large site it does the
    first derivation ahead of the first report. It also purges what deleted and edited
    funnels left behind.
    """
    for what, passed in derive.catch_up_all(db.session()).items():
        click.echo(f"{what}: {passed}" if what == derive.PURGED else f"{what}: {passed} events")
