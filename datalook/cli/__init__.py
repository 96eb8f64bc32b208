"""Command-line interface: `flask users|sites|members|keys|events|audit|analytics|demo|funnels ...`.

Every refusal exits non-zero with one line on stderr; `keys create` and `keys rotate`
print the token alone on stdout so scripts can capture it.
"""

from __future__ import annotations

from flask import Flask

from . import analytics, audit, demo, events, funnels, keys, members, sites, users


def register(app: Flask) -> None:
    """Add every command group to the app's CLI."""
    for group in (
        users.users,
        sites.sites,
        members.members,
        keys.keys,
        events.events,
        audit.audit,
        analytics.analytics,
        demo.demo,
        funnels.funnels,
    ):
        app.cli.add_command(group)
