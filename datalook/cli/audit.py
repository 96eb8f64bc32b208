"""`flask audit prune`: delete audit entries past their keeping period."""

from __future__ import annotations

import click

from ..accounts import audit as log
from ..extensions import db
from .common import CommandGroup

audit = CommandGroup("audit", help="The audit log.")


@audit.command("prune")
def audit_prune() -> None:
    """Delete entries older than a year (deletions of data: six years). Retention cut-offs
    (`flask events delete`) also do this."""
    count = log.prune(db.session())
    db.session.commit()
    click.echo(f"Pruned {count} audit entries", err=True)
