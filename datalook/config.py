"""Configuration from the environment, validated once at start-up.

Every setting has a safe default for a single-machine `make run`; an invalid value raises
`ConfigError` with a message meant for an operator, never a traceback.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .ratelimit.limit_text import validate_limit

#: The most events in a report's range whose visitors are counted exactly (by default).
DEFAULT_EXACT_EVENTS = 5_000


class ConfigError(RuntimeError):
    """A configuration value is invalid; the message says which and why."""


def _port(environ: Mapping[str, str]) -> int:
    """Return PORT as a valid TCP port number."""
    raw = environ.get("PORT", "5000")
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"PORT must be a number between 1 and 65535, got {raw[:20]!r}")
    return int(raw)


def default_workers() -> int:
    """Two sync workers per CPU (4 on 2 CPUs), at most 64.

    Fewer workers make a request wait behind a commit more often, and threads per worker
    answered fewer events than sync workers (measurements in bench/README.md).
    """
    return max(2, min(2 * (os.cpu_count() or 1), 64))


def _workers(environ: Mapping[str, str]) -> int:
    """Return WEB_CONCURRENCY as a positive worker count."""
    raw = environ.get("WEB_CONCURRENCY") or str(default_workers())
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ConfigError(f"WEB_CONCURRENCY must be a number between 1 and 64, got {raw[:20]!r}")
    return int(raw)


def _database_url(environ: Mapping[str, str], instance_path: Path) -> str:
    """Return an SQLAlchemy URL; PostgreSQL URLs are pointed at the psycopg 3 driver."""
    raw = environ.get("DATABASE_URL", "").strip()
    if not raw:
        return f"sqlite:///{instance_path / 'datalook.db'}"
    scheme = raw.partition("://")[0]
    if scheme in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + raw.partition("://")[2]
    if scheme in ("postgresql+psycopg", "sqlite"):
        return raw
    raise ConfigError(
        "DATABASE_URL must start with sqlite:/// or postgresql://, "
        f"got a URL with scheme {scheme[:20]!r}"
    )


def _public_url(environ: Mapping[str, str]) -> str | None:
    """Return PUBLIC_URL without a trailing slash, or None to use the request's root URL."""
    raw = environ.get("PUBLIC_URL", "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"PUBLIC_URL must be an http(s) base URL like https://example.com, got {raw[:80]!r}"
        )
    return raw.rstrip("/")


def _event_limit(environ: Mapping[str, str]) -> str:
    """Return the default per-key /event limit in flask-limiter syntax."""
    raw = environ.get("RATELIMIT_EVENT_DEFAULT", "500 per 10 seconds").strip()
    try:
        return validate_limit(raw)
    except ValueError as exc:
        raise ConfigError(
            f"RATELIMIT_EVENT_DEFAULT must look like '500 per 10 seconds': {exc}"
        ) from None


def _collect_address_limit(environ: Mapping[str, str]) -> str:
    """Return the per-address, per-site limit of POST /collect (browser events)."""
    raw = environ.get("COLLECT_ADDRESS_LIMIT", "120 per minute").strip()
    try:
        return validate_limit(raw)
    except ValueError as exc:
        raise ConfigError(f"COLLECT_ADDRESS_LIMIT must look like '120 per minute': {exc}") from None


def _sqlite_synchronous(environ: Mapping[str, str]) -> str:
    """Return SQLITE_SYNCHRONOUS: NORMAL (default, WAL) or FULL (fsync every commit)."""
    raw = environ.get("SQLITE_SYNCHRONOUS", "NORMAL").strip().upper()
    if raw not in ("NORMAL", "FULL"):
        raise ConfigError(f"SQLITE_SYNCHRONOUS must be NORMAL or FULL, got {raw[:20]!r}")
    return raw


def _busy_timeout(environ: Mapping[str, str]) -> int:
    """Return SQLITE_BUSY_TIMEOUT_MS: how long a write waits for a locked database."""
    raw = environ.get("SQLITE_BUSY_TIMEOUT_MS", "2000").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 60000:
        raise ConfigError(f"SQLITE_BUSY_TIMEOUT_MS must be 1 to 60000, got {raw[:20]!r}")
    return int(raw)


def _trusted_proxies(environ: Mapping[str, str]) -> int:
    """Return TRUSTED_PROXIES: how many reverse proxies in front set X-Forwarded-* headers."""
    raw = environ.get("TRUSTED_PROXIES", "0").strip()
    if not raw.isdigit() or int(raw) > 5:
        raise ConfigError(f"TRUSTED_PROXIES must be a number from 0 to 5, got {raw[:20]!r}")
    return int(raw)


def _refusal_log_rate(environ: Mapping[str, str]) -> int:
    """Return REFUSAL_LOG_PER_SECOND: refused requests recorded per key per second and
    worker for the live view (0: none)."""
    raw = environ.get("REFUSAL_LOG_PER_SECOND", "5").strip()
    if not raw.isdigit() or int(raw) > 100:
        raise ConfigError(f"REFUSAL_LOG_PER_SECOND must be 0 to 100, got {raw[:20]!r}")
    return int(raw)


def _exact_events(environ: Mapping[str, str]) -> int:
    """Return ANALYTICS_EXACT_EVENTS: the most events in a report's range whose visitors are
    counted exactly (larger ranges estimate them from sketches; 0: always estimate)."""
    raw = environ.get("ANALYTICS_EXACT_EVENTS", str(DEFAULT_EXACT_EVENTS)).strip()
    if not raw.isdigit() or int(raw) > 1_000_000_000:
        raise ConfigError(
            f"ANALYTICS_EXACT_EVENTS must be a number from 0 to 1000000000, got {raw[:20]!r}"
        )
    return int(raw)


def _fold_interval(environ: Mapping[str, str]) -> float:
    """Return ANALYTICS_FOLD_INTERVAL_S: seconds between two folds of the report summaries."""
    raw = environ.get("ANALYTICS_FOLD_INTERVAL_S", "1").strip()
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:  # also refuses nan and inf
        raise ConfigError(
            f"ANALYTICS_FOLD_INTERVAL_S must be 0.1 to 3600 seconds, got {raw[:20]!r}"
        )
    return seconds


def _catch_up_budget(environ: Mapping[str, str]) -> int:
    """Return REPORT_CATCHUP_BUDGET_MS: how long a report read may spend catching up what
    the fold process has not folded yet (0: none; past it, the report answers from what is
    folded and says so)."""
    raw = environ.get("REPORT_CATCHUP_BUDGET_MS", "500").strip()
    if not raw.isdigit() or int(raw) > 4000:
        raise ConfigError(f"REPORT_CATCHUP_BUDGET_MS must be 0 to 4000, got {raw[:20]!r}")
    return int(raw)


def _fold_behind(environ: Mapping[str, str]) -> int:
    """Return ANALYTICS_FOLD_BEHIND_EVENTS: how many events the fold may leave pending before
    /readyz reports it behind."""
    raw = environ.get("ANALYTICS_FOLD_BEHIND_EVENTS", "50000").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000_000:
        raise ConfigError(
            f"ANALYTICS_FOLD_BEHIND_EVENTS must be a number from 1 to 1000000000, got {raw[:20]!r}"
        )
    return int(raw)


def load_secret_key(instance_path: Path) -> str:
    """Read the secret key from instance/, generating it once (mode 0600) when missing."""
    path = instance_path / "secret_key"
    try:
        # O_EXCL: when several workers start at once, exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < 32:
            raise ConfigError(
                f"{path.name} in the instance folder is too short; delete it to regenerate"
            ) from None
        return key
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def from_environ(environ: Mapping[str, str], instance_path: Path) -> dict:
    """Build the Flask config mapping from environment variables."""
    instance_path.mkdir(parents=True, exist_ok=True)
    secret_key = environ.get("SECRET_KEY", "").strip()
    if secret_key and len(secret_key) < 32:
        raise ConfigError("SECRET_KEY must be at least 32 characters long")
    return {
        "SECRET_KEY": secret_key or load_secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": _database_url(environ, instance_path),
        "PUBLIC_URL": _public_url(environ),
        "RATELIMIT_STORAGE_URI": environ.get("RATELIMIT_STORAGE_URI", "").strip() or None,
        "RATELIMIT_EVENT_DEFAULT": _event_limit(environ),
        "COLLECT_ADDRESS_LIMIT": _collect_address_limit(environ),
        "SQLITE_SYNCHRONOUS": _sqlite_synchronous(environ),
        "TRUSTED_PROXIES": _trusted_proxies(environ),
        "SQLITE_BUSY_TIMEOUT_MS": _busy_timeout(environ),
        "REFUSAL_LOG_PER_SECOND": _refusal_log_rate(environ),
        "ANALYTICS_EXACT_EVENTS": _exact_events(environ),
        "ANALYTICS_FOLD_INTERVAL_S": _fold_interval(environ),
        "ANALYTICS_FOLD_BEHIND_EVENTS": _fold_behind(environ),
        "REPORT_CATCHUP_BUDGET_MS": _catch_up_budget(environ),
        "HOST": environ.get("HOST", "127.0.0.1"),
        "PORT": _port(environ),
        "WEB_CONCURRENCY": _workers(environ),
    }


def gunicorn_settings(environ: Mapping[str, str]) -> dict:
    """Validate the app server's settings (HOST, PORT, WEB_CONCURRENCY): server.py's, and
    gunicorn.conf.py's for the same app on gunicorn."""
    host = environ.get("HOST", "127.0.0.1").strip()
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"HOST must be an address like 127.0.0.1 or 0.0.0.0, got {host[:40]!r}")
    return {"host": host, "port": _port(environ), "workers": _workers(environ)}
