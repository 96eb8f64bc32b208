"""The show-once response: the only page that ever contains a key's full token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, make_response, render_template, request
from flask_login import current_user

from . import apikeys, snippets
from .apikeys import CreatedKey
from .forms import KeyKindForm, KeyNameForm
from .models import Site


def base_url() -> str:
    """The URL customers reach DataLook at: PUBLIC_URL, else this request's root."""
    return current_app.config.get("PUBLIC_URL") or request.url_root.rstrip("/")


def event_url() -> str:
    """The URL of POST /event as customers must call it."""
    return f"{base_url()}/event"


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


def create_from_form(site: Site, render_form: Callable[[Site, KeyNameForm, int], Any]):
    """Handle a submitted key-name form: the show-once page, or the form again (400)."""
    form = KeyKindForm()
    if not form.validate_on_submit():
        return render_form(site, form, 400)
    kind = form.kind.data or "live"
    try:
        created = apikeys.create_key(site, form.name.data, current_user, kind=kind)
    except apikeys.KeyRefused as exc:
        form.name.errors.append(str(exc))
        return render_form(site, form, 400)
    return render(site, created, "Your new test key" if kind == "test" else "Your new API key")
