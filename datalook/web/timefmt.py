"""One way to show a time to people: `2026-12-01 14:05 UTC`, in the site's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..analytics.ranges import site_zone


def site_time(value: datetime | None, site: Any = None, seconds: bool = False) -> str:
    """Format a stored (naive UTC) time in the site's zone, with the zone's short name."""
    if value is None:
        return "never"
    # As the reports: the site's zone, UTC when this server does not know it.
    tz = site_zone(getattr(site, "timezone", None))
    local = value.replace(tzinfo=UTC).astimezone(tz)
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local.strftime(pattern)} {local.tzname() or 'UTC'}"
