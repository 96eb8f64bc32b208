"""A site's browser-SDK settings: allowed origins, the public site key, Do-Not-Track."""

from __future__ import annotations

import json

from ..models import Site, new_site_key
from .origins import InvalidOrigin, added_origins, default_origins, normalise_origin

MAX_ORIGINS = 20


def add_origin(site: Site, text: str) -> str:
    """Allow one more origin for a site (normalised); raise InvalidOrigin when refused."""
    origin = normalise_origin(text)
    current = added_origins(site.allowed_origins)
    if origin in current or origin in default_origins(site.domain):
        return origin
    if len(current) >= MAX_ORIGINS:
        raise InvalidOrigin(f"a site may allow at most {MAX_ORIGINS} extra origins")
    site.allowed_origins = json.dumps([*current, origin])
    return origin


def remove_origin(site: Site, text: str) -> str:
    """Stop allowing an added origin; raise InvalidOrigin when it was not added."""
    origin = normalise_origin(text)
    current = added_origins(site.allowed_origins)
    if origin not in current:
        raise InvalidOrigin(f"{origin} is not among the site's added origins")
    remaining = [o for o in current if o != origin]
    site.allowed_origins = json.dumps(remaining) if remaining else None
    return origin


def regenerate_site_key(site: Site) -> str:
    """Give the site a new public key: pages with the old snippet stop being counted."""
    site.site_key = new_site_key()
    return site.site_key
