"""`flask users ...`: user accounts."""

from __future__ import annotations

import click

from ..accounts.emails import InvalidEmail, normalise_email
from ..accounts.passwords import MIN_PASSWORD_LENGTH, password_problem
from ..models import User
from .common import CommandGroup, add_or_fail, fail

users = CommandGroup("users", help="Manage user accounts.")


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
    add_or_fail(user, f"a user {normal!r} already exists")
    click.echo(f"Created user {normal}")
