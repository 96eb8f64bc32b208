"""What every command group shares: the one-line refusal, site lookup, the busy database."""

from __future__ import annotations

import getpass
import sqlite3
import sys
from typing import NoReturn

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ..accounts.domains import InvalidDomain, normalise_domain
from ..extensions import db
from ..models import Site
from ..sql.connections import add_unique

BUSY = "the database is busy (locked by another writer); try again"


def fail(message: str) -> NoReturn:
    """Print a one-line refusal on stderr and exit with status 1."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def cli_actor() -> str:
    """Who runs this command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli"


def add_or_fail(row: object, taken: str) -> None:
    """Store a new row, or exit with `taken` when a unique constraint says it exists."""
    if not add_unique(db.session(), row):
        fail(taken)


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


def database_locked(exc: BaseException) -> bool:
    """Whether an error means SQLite stayed locked by another writer past the busy timeout."""
    raw = exc.orig if isinstance(exc, OperationalError) else exc
    text = str(raw)
    return isinstance(raw, sqlite3.OperationalError) and (
        "database is locked" in text or "database table is locked" in text
    )


class CommandGroup(AppGroup):
    """A command group whose commands, on a database locked past the busy timeout (the wait
    the API allows, SQLITE_BUSY_TIMEOUT_MS), exit with one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        """Run the subcommand; turn a locked database into a one-line refusal."""
        try:
            return super().invoke(ctx)
        except (OperationalError, sqlite3.OperationalError) as exc:
            if not database_locked(exc):
                raise
            fail(BUSY)
