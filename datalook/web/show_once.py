"""The show-once response: the only page that ever contains a key's full token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..keys import apikeys, reveals
from ..keys.apikeys import CreatedKey
from ..keys.models import KeyReveal
from ..models import ApiKey, Site, utcnow
from ..snippets import render as snippets
from ..snippets import stats_api
from .forms.accounts import KeyKindForm, RotateForm

# The session holds the nonces of the reveals this browser made: {reveal id: nonce}.
_SESSION_KEY = "key_reveals"
_HELD_AT_MOST = 3


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


def new_form(**data: Any) -> KeyKindForm:
    """A create-key form with a fresh one-time nonce."""
    return KeyKindForm(data={**data, "nonce": reveals.new_nonce()})


def create_from_form(site: Site, render_form: Callable[..., Any]):
    """Handle a submitted create-key form: create the key and redirect to its show-once
    page (Post/Redirect/Get); the same form posted again redirects to the same page.

    Otherwise the form again, with its errors (400), or with the key its name names (409).
    """
    form = KeyKindForm()
    if not form.validate_on_submit():
        return render_form(site, form, 400)
    kind = form.kind.data or "live"
    made = _once(
        site,
        form,
        lambda keep: apikeys.create_key(
            site, form.name.data, current_user, kind=kind, with_key=keep
        ),
    )
    if not isinstance(made, apikeys.KeyRefused):
        return made
    form.name.errors.append(str(made))
    existing = active_key_named(site, form.name.data)
    if existing is not None:
        # Most often a form posted again long after: say that the key exists, that its
        # token cannot come back, and offer rotation instead.
        return render_form(site, form, 409, existing=existing)
    return render_form(site, form, 400)


def rotate_from_form(site: Site, key: ApiKey, form: RotateForm):
    """Rotate a key from its submitted form and redirect to the new key's show-once page
    (the same form posted again redirects to the same page); None with the refusal added
    to the form's errors."""
    made = _once(
        site,
        form,
        lambda keep: apikeys.rotate_key(key, form.expire_old_in.data, current_user, with_key=keep),
    )
    if isinstance(made, apikeys.KeyRefused):
        form.expire_old_in.errors.append(str(made))
        return None
    return made


def _once(
    site: Site,
    form: KeyKindForm | RotateForm,
    make: Callable[[Callable[[CreatedKey], None]], CreatedKey],
):
    """Make a key once per form (its nonce): the redirect to its show-once page, or the
    refusal (apikeys.KeyRefused) to show on the form. `make` gets the hook that stores the
    new token's reveal in the key's own transaction."""
    nonce = reveals.usable(db.session(), form.nonce.data, site.id, current_user.id)
    form.nonce.data = nonce
    posted_before = reveals.find(db.session(), nonce, site.id, current_user.id)
    if posted_before is not None:  # a double submit: the first post made the key
        return _to_reveal(site, posted_before, nonce)
    secret_key = current_app.config["SECRET_KEY"]
    kept: list[KeyReveal] = []

    def keep(created: CreatedKey) -> None:
        """Hold the new token for its show-once page, in the key's transaction."""
        reveals.wipe_expired(db.session())
        kept.append(
            reveals.store(
                db.session(), secret_key, nonce, created.key, created.token, current_user.id
            )
        )

    try:
        make(keep)
    except (apikeys.KeyRefused, IntegrityError) as exc:
        # The same form's first post may have made the key while this one waited (then
        # this one met its name, its rotation, or its nonce: the unique nonce_hash).
        db.session.rollback()
        posted_before = reveals.find(db.session(), nonce, site.id, current_user.id)
        if posted_before is not None:
            return _to_reveal(site, posted_before, nonce)
        if isinstance(exc, IntegrityError):
            raise
        return exc
    return _to_reveal(site, kept[0], nonce)


def _to_reveal(site: Site, reveal: KeyReveal, nonce: str):
    """Remember the nonce in the session (to open the reveal) and redirect to its page."""
    held = dict(session.get(_SESSION_KEY) or {})
    held[str(reveal.id)] = nonce
    # A few at most: one per tab that created a key in the last minutes.
    session[_SESSION_KEY] = dict(list(held.items())[-_HELD_AT_MOST:])
    return redirect(url_for("keys.created", site_id=site.id, reveal_id=reveal.id), code=303)


def reveal_page(site: Site, reveal_id: int):
    """The show-once page of a key just created (GET: reloading it posts nothing); once its
    time is up, the page says the token cannot be shown again and offers rotation."""
    reveal = db.session.get(KeyReveal, reveal_id)
    if reveal is None or reveal.site_id != site.id or reveal.user_id != current_user.id:
        abort(404)
    nonce = (session.get(_SESSION_KEY) or {}).get(str(reveal_id))
    opened = reveals.open_reveal(db.session(), current_app.config["SECRET_KEY"], reveal, nonce)
    if opened.token is None:
        response = make_response(
            render_template("keys/reveal_gone.html", site=site, existing=opened.key), 410
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    replaced = db.session.scalar(select(ApiKey).where(ApiKey.replaced_by_id == opened.key.id))
    if replaced is not None:
        heading = "Your rotated API key"
    else:
        headings = {"test": "Your new test key", "read": "Your new read key"}
        heading = headings.get(opened.key.kind, "Your new API key")
    return render(site, CreatedKey(opened.key, opened.token), heading, replaced=replaced)


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
