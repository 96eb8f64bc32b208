"""What every command group shares: the one-line refusal, site lookup, the busy database."""

from __future__ import annotations

import functools
import getpass
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ..accounts.domains import InvalidDomain, normalise_domain
from ..extensions import db
from ..models import Site
from ..sql.connections import add_unique
from ..sql.readiness import not_ready

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


#: What to run when the database is not set up (the command line never creates one).
SET_UP = "run `make run` once, or `.venv/bin/flask --app wsgi db upgrade`"


def require_database() -> None:
    """Stop with one line when the app's database is not set up (never create it)."""
    reason = not_ready(db.engine)
    if reason is not None:
        fail(f"the database is not set up: {reason}; {SET_UP}")


class CommandGroup(AppGroup):
    """A command group whose commands need the database set up (else one line says what to
    run), and, on a database locked past the busy timeout (the wait the API allows,
    SQLITE_BUSY_TIMEOUT_MS), exit with one line instead of a traceback."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        """Flask's command decorator, whose command first checks the database (after its
        arguments are parsed, so that --help needs no database)."""
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return self.command()(args[0])
        register = super().command(*args, **kwargs)

        def decorator(function: Callable[..., Any]) -> Any:
            """Wrap the command's function in the check, then register it."""

            @functools.wraps(function)
            def checked(*a: Any, **kw: Any) -> Any:
                require_database()
                return function(*a, **kw)

            return register(checked)

        return decorator

    def invoke(self, ctx: click.Context):
        """Run the subcommand; a locked database is a one-line refusal."""
        try:
            return super().invoke(ctx)
        except (OperationalError, sqlite3.OperationalError) as exc:
            if not database_locked(exc):
                raise
            fail(BUSY)
