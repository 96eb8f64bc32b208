"""`flask keys ...`: API keys (create, list, revoke, rotate, rate limit)."""

from __future__ import annotations

import click
from sqlalchemy import select

from ..extensions import db
from ..keys import apikeys
from ..models import ApiKey
from ..ratelimit.limit_text import validate_limit
from .common import CommandGroup, fail, site_by_domain

keys = CommandGroup("keys", help="Manage API keys.")


def _key_by_id(key_id: str) -> ApiKey:
    """Find a key by its public key_id (the part after dl_live_), or fail."""
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None:
        fail(f"no key {key_id[:40]!r}")
    return key


@keys.command("create")
@click.option("--site", "domain", required=True)
@click.option("--name", required=True)
@click.option("--test", is_flag=True, help="A test key (dl_test_…): its events count in no report.")
@click.option("--read", is_flag=True, help="A read key (dl_read_…): reads the reports (Stats API).")
def keys_create(domain: str, name: str, test: bool, read: bool) -> None:
    """Create an API key and print its token (shown only this once)."""
    site = site_by_domain(domain)
    if test and read:
        fail("choose one of --test and --read")
    kind = "read" if read else "test" if test else "live"
    try:
        created = apikeys.create_key(site, name, None, kind=kind)
    except apikeys.KeyRefused as exc:
        fail(str(exc))
    click.echo(created.token)


@keys.command("list")
@click.option("--site", "domain", required=True)
def keys_list(domain: str) -> None:
    """List a site's keys (masked; secrets are never stored)."""
    site = site_by_domain(domain)
    for key in site.api_keys:
        click.echo(
            "\t".join(
                [
                    key.key_id,
                    key.kind,
                    key.name,
                    key.status(),
                    key.rate_limit or "default",
                    f"created {key.created_at:%Y-%m-%d %H:%M}",
                    f"last used {key.last_used_at:%Y-%m-%d %H:%M}"
                    if key.last_used_at
                    else "never used",
                ]
            )
        )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once."""
    key = _key_by_id(key_id)
    apikeys.revoke_key(key)
    click.echo(f"Revoked {key.key_id}", err=True)


@keys.command("rotate")
@click.argument("key_id")
@click.option(
    "--expire-old-in",
    type=click.Choice(list(apikeys.GRACE_PERIODS)),
    default="24h",
    show_default=True,
)
def keys_rotate(key_id: str, expire_old_in: str) -> None:
    """Create a replacement key and print its token; the old one expires as chosen."""
    key = _key_by_id(key_id)
    try:
        created = apikeys.rotate_key(key, expire_old_in, None)
    except apikeys.KeyRefused as exc:
        fail(str(exc))
    click.echo(created.token)


@keys.command("set-limit")
@click.argument("key_id")
@click.argument("limit")
def keys_set_limit(key_id: str, limit: str) -> None:
    """Set a key's rate limit, e.g. "2000 per 10 seconds", or "default"."""
    key = _key_by_id(key_id)
    if limit.strip().lower() == "default":
        apikeys.set_limit(key, None)
    else:
        try:
            apikeys.set_limit(key, validate_limit(limit))
        except ValueError as exc:
            fail(str(exc))
    click.echo(f"{key.key_id}: {key.rate_limit or 'default'}", err=True)
