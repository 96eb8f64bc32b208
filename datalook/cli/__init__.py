"""Command-line interface: `flask users|sites|keys|events|analytics|demo|funnels ...`.

Every refusal exits non-zero with one line on stderr; `keys create` and `keys rotate`
print the token alone on stdout so scripts can capture it.
"""

from __future__ import annotations

from flask import Flask

from . import analytics, demo, events, funnels, keys, sites, users


def register(app: Flask) -> None:
    """Add every command group to the app's CLI."""
    for group in (
        users.users,
        sites.sites,
        keys.keys,
        events.events,
        analytics.analytics,
        demo.demo,
        funnels.funnels,
    ):
        app.cli.add_command(group)
