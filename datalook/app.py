"""Application factory."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map
from werkzeug.routing.converters import IntegerConverter

from . import cli
from .acquisition import geo
from .browser.bot_counts import bot_counter_for
from .config import from_environ, with_settings_file
from .envelope import wants_json
from .extensions import csrf, db, login_manager, migrate
from .ingest.app import Dispatcher, IngestionApp
from .ingest.pipeline import Context
from .ingest.refusals import recorder_for
from .ingest.usage import counter_for
from .keys import tokens
from .keys.wrong_secrets import WrongSecrets
from .ratelimit import limiter as rate_limiter
from .ratelimit.rules import parsed as parsed_limit
from .sql import connections
from .sql.connections import HeldConnection
from .web import errors, numbers, security_headers, timefmt


class RowIdConverter(IntegerConverter):
    """`<int:…>` in a URL is a row id, at most 2^63 − 1: a larger number matches no route
    (404) instead of overflowing the database's integer (a 500)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        """Bound the number by the largest signed 64-bit integer unless a route sets `max`."""
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the DataLook app; `test_config` overrides the environment."""
    app = Flask(__name__, instance_path=os.environ.get("DATALOOK_INSTANCE_PATH") or None)
    app.url_map.converters["int"] = RowIdConverter
    instance = Path(app.instance_path)
    # What the environment leaves unset comes from the settings `make run` wrote, if any.
    app.config.from_mapping(from_environ(with_settings_file(os.environ, instance), instance))
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
    # Region and city at ingestion (acquisition.geo reads the file; checked by the config).
    geo.use_database(app.config.get("GEOIP_DATABASE"))
    if app.config["PUBLIC_URL"] and app.config["PUBLIC_URL"].startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    # One entry for both apps. Behind N reverse proxies ProxyFix takes the client address,
    # scheme and host from their X-Forwarded-* headers (per-address limits, Secure cookies,
    # generated URLs); the backends' API paths skip it and read the address only when they
    # need it (ingest.pipeline.client_address). (mypy reads wsgi_app as a method; Flask
    # documents replacing it with middleware.)
    ingestion = IngestionApp(lambda: _ingestion_context(app))
    pages, proxied = app.wsgi_app, None
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        pages = ProxyFix(pages, x_for=hops, x_proto=hops, x_host=hops)
        proxied = ProxyFix(ingestion, x_for=hops, x_proto=hops, x_host=hops)
    app.wsgi_app = Dispatcher(ingestion, pages, proxied)  # type: ignore[method-assign]
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
    connections.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    rate_limiter.init_app(app)
    errors.register(app)
    cli.register(app)
    _register_blueprints(app)
    _register_security_headers(app)
    app.jinja_env.filters["fromjson"] = json.loads
    app.jinja_env.filters["masked_token"] = tokens.masked
    app.jinja_env.filters["site_time"] = timefmt.site_time
    numbers.register(app.jinja_env.filters)  # one way to show numbers on every page
    app.session_interface = _HttpsAwareSessionInterface()
    return app


def _ingestion_context(app: Flask) -> Context:
    """What the ingestion app needs from this app: its engine, limits and usage counter."""
    with app.app_context():
        engine = db.engine
        limits = rate_limiter.api_limits(app)
    dbapi = engine.dialect.loaded_dbapi
    counter = counter_for(app.extensions)
    refusals = recorder_for(app.extensions)
    refusals.per_key_per_second = app.config["REFUSAL_LOG_PER_SECOND"]
    refusals.bind(engine)
    return Context(
        engine,
        HeldConnection(engine),
        counter,
        limits,
        parsed_limit(app.config["COLLECT_ADDRESS_LIMIT"]),
        refusals,
        (dbapi.OperationalError, dbapi.InterfaceError, OperationalError, InterfaceError),
        # Behind the front (TRUSTED_PROXIES), a write's wait counts from its X-Request-Start.
        bots=bot_counter_for(app.extensions),
        trusted_hops=app.config["TRUSTED_PROXIES"],
        group_writes=app.config.get("WEB_THREADS", 1) > 1,
        front_budget=(
            app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000
            if app.config["TRUSTED_PROXIES"] and engine.dialect.name == "sqlite"
            else None
        ),
        wrong_secrets=WrongSecrets(quiet=refusals.would_skip),
    )


class _HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Session cookies marked Secure over HTTPS (also behind a trusted proxy)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when configured, or when this request is HTTPS."""
        return bool(
            app.config["SESSION_COOKIE_SECURE"] or (has_request_context() and request.is_secure)
        )


def _register_blueprints(app: Flask) -> None:
    """Mount every area of the app."""
    from .web import (
        audit_log,
        auth,
        browser_quest,
        dashboard,
        docs,
        funnel_people,
        funnels,
        health,
        invitation,
        keys,
        members,
        quests,
        reports_api,
        shares,
        sites,
        tracker,
    )
    from .web import live_page as live

    areas = (
        auth,
        sites,
        dashboard,
        quests,
        browser_quest,
        keys,
        live,
        tracker,
        docs,
        health,
        funnels,
        funnel_people,
        reports_api,
        shares,
        members,
        invitation,
        audit_log,
    )
    for module in areas:
        app.register_blueprint(module.bp)


def _register_security_headers(app: Flask) -> None:
    """Add headers that make every page harder to attack."""

    @app.after_request
    def _headers(response):
        """CSP without inline scripts or styles, no sniffing, no framing (pages); nosniff (JSON)."""
        if wants_json(request.path):
            response.headers["X-Content-Type-Options"] = "nosniff"
        else:
            security_headers.add_page_headers(response)
        return response


@login_manager.user_loader
def _load_user(user_id: str):
    """Load the logged-in user for Flask-Login."""
    from .models import User

    return db.session.get(User, int(user_id)) if user_id.isdigit() else None
