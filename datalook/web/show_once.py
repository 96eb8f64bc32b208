"""The show-once response: the only page that ever contains a key's full token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, make_response, render_template, request
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..keys import apikeys
from ..keys.apikeys import CreatedKey
from ..models import ApiKey, Site, utcnow
from ..snippets import render as snippets
from ..snippets import stats_api
from .forms.accounts import KeyKindForm


def base_url() -> str:
    """The URL customers reach DataLook at: PUBLIC_URL, else this request's root."""
    return current_app.config.get("PUBLIC_URL") or request.url_root.rstrip("/")


def event_url() -> str:
    """The URL of POST /event as customers must call it."""
    return f"{base_url()}/event"


def render(site: Site, created: CreatedKey, heading: str, replaced: ApiKey | None = None):
    """Render the token once, with pre-filled snippets; never cached anywhere.

    `replaced` is the key a rotation replaced: the page says when it stops working. A read
    key gets the Stats API's examples instead of the event snippets.
    """
    is_read = created.key.is_read
    response = make_response(
        render_template(
            "keys/show_once.html",
            site=site,
            key=created.key,
            token=created.token,
            heading=heading,
            replaced=replaced,
            snippets=None if is_read else snippets.render(event_url(), created.token),
            examples=stats_api.examples(base_url(), site.id, created.token) if is_read else None,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def create_from_form(site: Site, render_form: Callable[..., Any]):
    """Handle a submitted key-name form: the show-once page, or the form again (400)."""
    form = KeyKindForm()
    if not form.validate_on_submit():
        return render_form(site, form, 400)
    kind = form.kind.data or "live"
    try:
        created = apikeys.create_key(site, form.name.data, current_user, kind=kind)
    except apikeys.KeyRefused as exc:
        form.name.errors.append(str(exc))
        existing = active_key_named(site, form.name.data)
        if existing is not None:
            # Most often the show-once page reloaded (the form posted again): say that the
            # key exists, that its token cannot come back, and offer rotation instead.
            return render_form(site, form, 409, existing=existing)
        return render_form(site, form, 400)
    headings = {"test": "Your new test key", "read": "Your new read key"}
    return render(site, created, headings.get(kind, "Your new API key"))


def active_key_named(site: Site, name: str | None) -> ApiKey | None:
    """The site's active key of that name, if there is one."""
    if not name:
        return None
    return db.session.scalar(
        select(ApiKey)
        .where(ApiKey.site_id == site.id, ApiKey.name == name.strip())
        .where(ApiKey.active_at(utcnow()))
        .limit(1)
    )
