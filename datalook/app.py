"""Application factory."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, database, errors, ingest_wsgi, ratelimits, tokens
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
    if app.config["PUBLIC_URL"] and app.config["PUBLIC_URL"].startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    # Before ProxyFix, so that the ingestion API sees the client's address and scheme too.
    ingest_wsgi.install(app)
    if app.config["TRUSTED_PROXIES"]:
        # Behind N reverse proxies: take the client address, scheme and host from their
        # X-Forwarded-* headers (per-address limits, Secure cookies, generated URLs).
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
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
    app.jinja_env.filters["masked_token"] = tokens.masked
    app.session_interface = _HttpsAwareSessionInterface()
    return app


class _HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Session cookies: Secure over HTTPS, and never on the machine-facing API."""

    def open_session(self, app: Flask, request):
        """Machine-facing endpoints never have a session: skip reading the cookie."""
        # By path: the session is opened before the URL is matched to a blueprint.
        if request.path in SESSIONLESS_PATHS:
            return self.null_session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        """Never set a cookie (or its Vary header) on machine-facing endpoints."""
        if request.path in SESSIONLESS_PATHS:
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured, or when this request is HTTPS."""
        return bool(
            app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure)
        )


def _register_blueprints(app: Flask) -> None:
    """Mount every area of the app."""
    from .blueprints import auth, dashboard, docs, events_api, funnels, health, keys, quests, sites

    for module in (auth, sites, dashboard, quests, keys, events_api, docs, health, funnels):
        app.register_blueprint(module.bp)


# The ingestion API and the probes: no cookies, no session, ever.
SESSIONLESS_PATHS = frozenset({"/event", "/events", "/healthz", "/readyz"})

_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _register_security_headers(app: Flask) -> None:
    """Add headers that make every page harder to attack."""

    @app.after_request
    def _headers(response):
        """CSP without inline scripts or styles, no sniffing, no framing (pages); nosniff (API)."""
        if wants_json():
            response.headers["X-Content-Type-Options"] = "nosniff"
        else:
            for name, value in _PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
        return response


@login_manager.user_loader
def _load_user(user_id: str):
    """Load the logged-in user for Flask-Login."""
    from .models import User

    return db.session.get(User, int(user_id)) if user_id.isdigit() else None
