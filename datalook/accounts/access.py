"""Ownership checks: a site and everything in it belong to its owner alone."""

from __future__ import annotations

from flask import abort
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import ApiKey, Site


def owned_site_or_404(site_id: int) -> Site:
    """Return the current user's site, or 404 (never 403: others must not learn it exists)."""
    site = db.session.scalar(
        select(Site).where(Site.id == site_id, Site.owner_id == current_user.id)
    )
    if site is None:
        abort(404)
    return site


def owned_key_or_404(site: Site, key_id: str) -> ApiKey:
    """Return a key of the given (already owned) site, or 404."""
    key = db.session.scalar(
        select(ApiKey).where(ApiKey.site_id == site.id, ApiKey.key_id == key_id)
    )
    if key is None:
        abort(404)
    return key
