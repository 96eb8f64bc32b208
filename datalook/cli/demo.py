"""`flask demo seed`: realistic generated events in a site, folded and derived."""

from __future__ import annotations

import time

import click
from flask import current_app

from ..analytics import catch_up as derive
from ..analytics.rollups import fold as summaries
from ..extensions import db
from ..keys import apikeys
from . import demo_derive, demo_write
from .common import CommandGroup, site_by_domain

demo = CommandGroup("demo", help="Demo data.")


@demo.command("seed")
@click.option("--site", "domain", required=True)
@click.option("--events", type=click.IntRange(1, 100_000_000), required=True)
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
@click.option("--visitors", type=click.IntRange(1), help="Distinct users (default: events/10).")
def demo_seed(domain: str, events: int, days: int, visitors: int | None) -> None:
    """Write realistic generated sessions of events into a site (with their identity links
    and, on a site without events, their sessions), fold them into the summaries and file
    them in the kind index (as they are written), then derive what is left and the saved
    funnels."""
    site = site_by_domain(domain)
    # Demo events come from a key of the site, as server events do.
    key_id = (
        site.api_keys[0].id if site.api_keys else apikeys.create_key(site, "Demo data", None).key.id
    )
    site_id, shown = site.id, site.domain
    engine = db.engine
    db.session.close()
    started = time.monotonic()
    # Whatever was pending first: the seed then folds and files its chunks as it writes
    # them, the cursors standing just before each.
    folded = summaries.catch_up(engine, current_app.instance_path, batch=20_000)
    writing = time.monotonic()
    deriver = demo_derive.ChunkDeriver()
    written = demo_write.write(
        engine,
        db.session(),
        site_id,
        key_id,
        events,
        days,
        visitors or max(1, events // 10),
        deriver=deriver,
    )
    db.session.close()
    wrote = time.monotonic()
    folded += deriver.folded + summaries.catch_up(engine, current_app.instance_path, batch=20_000)
    folded_at = time.monotonic()
    # Sessions and saved funnels too: the first page view must not pay for the whole seed.
    derived = derive.catch_up_all(db.session())
    db.session.close()
    done = time.monotonic()
    click.echo(
        f"Seeded {written:,} events with their links and sessions into {shown} in"
        f" {wrote - writing:.1f} s, folding {deriver.folded:,} of them into the summaries and"
        f" filing {deriver.filed:,} in the kind index as they were written;"
        f" {_folded_in_words(folded)} (the fold's own part"
        f" {writing - started + folded_at - wrote:.1f} s); derived the kind index, sessions"
        f" and saved funnels ({_passed(derived)}) in {done - folded_at:.1f} s;"
        f" {done - started:.1f} s in all"
    )


def _folded_in_words(folded: int) -> str:
    """What the fold did, in plain words: when the running server's own fold got to the new
    events first, nothing was left to add, which is not a failure."""
    if folded == 0:
        return "the report summaries already held them (the running server's fold added them)"
    return f"added {folded:,} events to the report summaries"


def _passed(derived: dict[str, int]) -> str:
    """How many events each derivation passed over (the seed stores the sessions of a new
    site itself: the sessions then pass over none)."""
    return (
        ", ".join(f"{name} {count:,}" for name, count in derived.items() if count) or "nothing left"
    )
