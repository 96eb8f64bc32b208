"""The show-once response: the only page that ever contains a key's full token."""

from __future__ import annotations

from flask import current_app, make_response, render_template, request

from . import snippets
from .apikeys import CreatedKey
from .models import Site


def event_url() -> str:
    """The URL of POST /event as customers must call it (PUBLIC_URL, else this request's root)."""
    base = current_app.config.get("PUBLIC_URL") or request.url_root.rstrip("/")
    return f"{base}/event"


def render(site: Site, created: CreatedKey, heading: str):
    """Render the token once, with pre-filled snippets; never cached anywhere."""
    response = make_response(
        render_template(
            "keys/show_once.html",
            site=site,
            key=created.key,
            token=created.token,
            heading=heading,
            snippets=snippets.render(event_url(), created.token),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
