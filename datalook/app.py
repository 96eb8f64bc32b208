"""Application factory."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from . import cli, database, errors, ratelimits
from .config import from_environ
from .errors import wants_json
from .extensions import csrf, db, login_manager, migrate


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the DataLook app; `test_config` overrides the environment."""
    app = Flask(__name__, instance_path=os.environ.get("DATALOOK_INSTANCE_PATH") or None)
    instance = Path(app.instance_path)
    app.config.from_mapping(from_environ(os.environ, instance))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
    )
    database.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    ratelimits.init_app(app)
    errors.register(app)
    cli.register(app)
    _register_blueprints(app)
    _register_security_headers(app)
    app.jinja_env.filters["fromjson"] = json.loads
    app.session_interface = _HttpsAwareSessionInterface()
    return app


class _HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Session cookies: Secure over HTTPS, and never on the machine-facing API."""

    def save_session(self, app: Flask, session, response) -> None:
        """Skip the cookie (and its Vary header) entirely on API paths."""
        if wants_json():
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured, or when this request is HTTPS."""
        return bool(
            app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure)
        )


def _register_blueprints(app: Flask) -> None:
    """Mount every area of the app."""
    from .blueprints import auth, dashboard, docs, events_api, health, keys, quests, sites

    for module in (auth, sites, dashboard, quests, keys, events_api, docs, health):
        app.register_blueprint(module.bp)


def _register_security_headers(app: Flask) -> None:
    """Add headers that make every page harder to attack."""

    @app.after_request
    def _headers(response):
        """Apply CSP (no inline scripts or styles), no sniffing, no framing."""
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response


@login_manager.user_loader
def _load_user(user_id: str):
    """Load the logged-in user for Flask-Login."""
    from .models import User

    return db.session.get(User, int(user_id)) if user_id.isdigit() else None
