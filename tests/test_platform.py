"""Configuration, health probes, error envelopes and pages, security headers, templates."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from datalook.analytics import heartbeat
from datalook.config import ConfigError, from_environ, gunicorn_settings
from datalook.extensions import db
from datalook.keys import tokens
from tests.conftest import csrf_from

ROOT = Path(__file__).resolve().parent.parent


def test_secret_key_is_generated_once_with_mode_0600(tmp_path):
    first = from_environ({}, tmp_path)["SECRET_KEY"]
    second = from_environ({}, tmp_path)["SECRET_KEY"]
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600


def test_explicit_secret_key_wins(tmp_path):
    key = "k" * 40
    assert from_environ({"SECRET_KEY": key}, tmp_path)["SECRET_KEY"] == key
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "http"}, "PORT must be a number"),
        ({"PORT": "70000"}, "PORT must be a number"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"PUBLIC_URL": "example.com"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "ftp://example.com"}, "PUBLIC_URL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"RATELIMIT_EVENT_DEFAULT": "lots"}, "RATELIMIT_EVENT_DEFAULT"),
    ],
)
def test_invalid_configuration_is_refused_clearly(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message):
        from_environ(environ, tmp_path)
        gunicorn_settings(environ)


@pytest.mark.parametrize(("cpus", "expected"), [(None, 2), (1, 2), (2, 4), (8, 16), (256, 64)])
def test_default_workers_follow_the_cpus(monkeypatch, cpus, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert gunicorn_settings({})["workers"] == expected
    assert gunicorn_settings({"WEB_CONCURRENCY": "3"})["workers"] == 3


def test_database_url_defaults_to_sqlite_in_instance_and_accepts_postgres(tmp_path):
    assert (
        from_environ({}, tmp_path)["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/datalook.db"
    )
    url = from_environ({"DATABASE_URL": "postgresql://u@h/db"}, tmp_path)["SQLALCHEMY_DATABASE_URI"]
    assert url == "postgresql+psycopg://u@h/db"


def test_start_up_with_bad_config_prints_a_message_not_a_traceback(tmp_path):
    env = {**os.environ, "PORT": "nope", "DATALOOK_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "configuration error: PORT must be a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_healthz_and_readyz(app, client):
    with app.app_context():
        heartbeat.beat(db.engine)  # as the fold process beside the server does at every tick
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {
        "database": "ok",
        "rate_limit_storage": "ok",
        "fold": "ok",
    }
    assert ready.get_json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/event", 405, "method_not_allowed"),
        ("GET", "/api/nothing-here", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_api_errors_use_the_json_envelope(client, method, path, status, code):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["message"]


def test_pages_get_html_error_pages(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not Found" in response.get_data(as_text=True)


def test_unexpected_error_rolls_back_logs_and_answers_500(app, caplog):
    @app.route("/api/boom")
    def boom():
        raise RuntimeError("kaboom")

    response = app.test_client().get("/api/boom")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "kaboom" not in response.get_data(as_text=True)
    assert "unhandled error" in caplog.text


def test_security_headers_on_pages(client):
    response = client.get("/signup")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_every_template_compiles(app):
    env = app.jinja_env
    names = [n for n in env.list_templates() if n.endswith(".html")]
    assert len(names) >= 10
    for name in names:
        env.get_template(name)


def test_pages_use_no_external_resources(client):
    page = client.get("/signup").get_data(as_text=True)
    assert "http://" not in page.replace("http://localhost", "") and "https://" not in page


def test_trusted_proxies_give_the_client_address_and_https(make_app):
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    page = client.get("/signup", headers=forwarded)
    response = client.post(
        "/signup",
        data={
            "email": "p@example.com",
            "password": "correct horse battery",
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
        headers={**forwarded, "Referer": "https://localhost/signup"},
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]
    # Failed authentication is limited per forwarded client address, not per proxy.
    for _ in range(60):
        client.post("/event", json={}, headers={"X-Forwarded-For": "203.0.113.7"})
    assert (
        client.post("/event", json={}, headers={"X-Forwarded-For": "203.0.113.7"}).status_code
        == 429
    )
    assert (
        client.post("/event", json={}, headers={"X-Forwarded-For": "198.51.100.9"}).status_code
        == 401
    )


def test_without_trusted_proxies_forwarded_headers_are_ignored(client):
    for _ in range(60):
        client.post("/event", json={}, headers={"X-Forwarded-For": "203.0.113.7"})
    # All from the same real address: spoofed X-Forwarded-For does not buy new attempts.
    assert (
        client.post("/event", json={}, headers={"X-Forwarded-For": "198.51.100.9"}).status_code
        == 429
    )


def test_https_public_url_makes_the_session_cookie_secure(make_app):
    assert make_app(PUBLIC_URL="https://analytics.example.com").config["SESSION_COOKIE_SECURE"]
    assert not make_app(PUBLIC_URL="http://127.0.0.1:5000").config["SESSION_COOKIE_SECURE"]


@pytest.mark.parametrize("bad", ["-1", "many", "9"])
def test_trusted_proxies_must_be_a_small_number(tmp_path, bad):
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        from_environ({"TRUSTED_PROXIES": bad}, tmp_path)


def test_unreachable_database_is_a_503_not_a_500(make_app):
    # Nothing listens on port 1: every connection attempt fails at once.
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = app.test_client()
    token = "Bearer " + tokens.generate().token
    response = client.post(
        "/event", json={"event_name": "click", "page_path": "/"}, headers={"Authorization": token}
    )
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"
    assert client.get("/readyz").status_code == 503
