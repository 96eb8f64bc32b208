"""Configuration from the environment, validated once at start-up.

Every setting has a safe default for a single-machine `make run`; an invalid value raises
`ConfigError` with a message meant for an operator, never a traceback.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import maxminddb
from email_validator import EmailNotValidError, validate_email

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


def _threads(environ: Mapping[str, str]) -> int:
    """Return WEB_THREADS: the threads serving requests in each worker (1 by default).

    A worker's threads share one interpreter lock; what they can gain is that their
    events' commits are grouped (ingest/group_commit.py). On 2 CPUs, 2 workers of 4 threads
    spent the same CPU per event as 4 workers of 1, so one thread stays the default.
    """
    raw = environ.get("WEB_THREADS") or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise ConfigError(f"WEB_THREADS must be a number between 1 and 64, got {raw[:20]!r}")
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


def _read_key_limit(environ: Mapping[str, str]) -> str:
    """Return READ_KEY_RATE_LIMIT: the default limit of each read key on the report endpoints."""
    raw = environ.get("READ_KEY_RATE_LIMIT", "600 per hour").strip()
    try:
        return validate_limit(raw)
    except ValueError as exc:
        raise ConfigError(f"READ_KEY_RATE_LIMIT must look like '600 per hour': {exc}") from None


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


def _store_dir(environ: Mapping[str, str], instance_path: Path) -> str:
    """Return ANALYTICS_STORE_DIR: the directory of the analytics store's files (made if
    missing; it must be writable), `<instance>/analytics-store` by default."""
    raw = environ.get("ANALYTICS_STORE_DIR", "").strip()
    path = Path(raw).expanduser() if raw else instance_path / "analytics-store"
    if not path.is_absolute():
        raise ConfigError(f"ANALYTICS_STORE_DIR must be an absolute path, got {raw[:80]!r}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"ANALYTICS_STORE_DIR cannot be made: {exc.strerror}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"ANALYTICS_STORE_DIR must be a writable directory, got {raw[:80]!r}")
    return str(path)


def _geoip_database(environ: Mapping[str, str]) -> str | None:
    """GEOIP_DATABASE: an optional MaxMind / DB-IP .mmdb file for region and city; it must
    exist and open (None: not set, countries come from the embedded registry data)."""
    raw = environ.get("GEOIP_DATABASE", "").strip()
    if not raw:
        return None
    try:
        maxminddb.open_database(raw).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GEOIP_DATABASE must be a readable .mmdb file: {exc}") from None
    except maxminddb.InvalidDatabaseError as exc:
        raise ConfigError(f"GEOIP_DATABASE is not a valid .mmdb file: {exc}") from None
    return raw


def parse_smtp_url(url: str) -> tuple[bool, str, int, str | None, str | None]:
    """(TLS from the start, host, port, user, password) of an smtp:// or smtps:// URL;
    ValueError saying what is wrong (never echoing the URL, which may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("the scheme must be smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    tls = parts.scheme == "smtps"
    return (
        tls,
        parts.hostname,
        port or (465 if tls else 25),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def _smtp_url(environ: Mapping[str, str]) -> str | None:
    """Return SMTP_URL (smtp://[user:password@]host[:port] or smtps://…), or None: then
    no email is sent (invitation links are shown to copy)."""
    raw = environ.get("SMTP_URL", "").strip()
    if not raw:
        return None
    try:
        parse_smtp_url(raw)
    except ValueError as exc:
        # Never echo the URL: it may hold a password.
        raise ConfigError(
            f"SMTP_URL must look like smtp://host:587 or smtps://user:password@host: {exc}"
        ) from None
    return raw


def _mail_from(environ: Mapping[str, str], smtp_url: str | None) -> str | None:
    """Return MAIL_FROM, the sender address of emails; required with SMTP_URL."""
    raw = environ.get("MAIL_FROM", "").strip()
    if not raw:
        if smtp_url:
            raise ConfigError("MAIL_FROM must be set with SMTP_URL, e.g. datalook@example.com")
        return None
    try:
        return validate_email(raw, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ConfigError(f"MAIL_FROM must be an email address, got {raw[:80]!r}: {exc}") from None


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


#: The settings file `make run` (scripts/serve.sh) writes in the instance folder: the
#: settings the server runs with, so that the `flask` command, run from a shell without the
#: server's environment, uses the same database and knows the served URL.
SETTINGS_FILE = "datalook.env"
#: The names it may hold (anything else in it is ignored; SECRET_KEY never goes there).
SHARED_SETTINGS = (
    "DATABASE_URL",
    "PUBLIC_URL",
    "HOST",
    "PORT",
    "RATELIMIT_STORAGE_URI",
    "TRUSTED_PROXIES",
    "SQLITE_SYNCHRONOUS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "ANALYTICS_EXACT_EVENTS",
    "ANALYTICS_STORE_DIR",
)


def read_settings_file(path: Path) -> dict[str, str]:
    """The NAME=value lines of a settings file (blank lines and # comments skipped; a value
    is taken as written, without quotes); {} when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    settings = {}
    for line in text.splitlines():
        name, equals, value = line.strip().partition("=")
        if equals and name in SHARED_SETTINGS:
            settings[name] = value.strip()
    return settings


def with_settings_file(environ: Mapping[str, str], instance_path: Path) -> dict[str, str]:
    """The environment, completed by the instance's settings file where it sets nothing:
    what is set in the environment always wins."""
    written = read_settings_file(instance_path / SETTINGS_FILE)
    merged = dict(environ)
    for name, value in written.items():
        if not merged.get(name, "").strip():
            merged[name] = value
    return merged


def served_url(config: Mapping[str, object]) -> str:
    """The URL visitors reach this instance at: PUBLIC_URL, else http://HOST:PORT (a
    wildcard HOST shown as 127.0.0.1)."""
    if config.get("PUBLIC_URL"):
        return str(config["PUBLIC_URL"])
    host = str(config.get("HOST") or "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - shown, never bound
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.get('PORT', 5000)}"


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
        # The threads of each worker: its writes are grouped only when it has several.
        "WEB_THREADS": _threads(environ),
        "COLLECT_ADDRESS_LIMIT": _collect_address_limit(environ),
        "READ_KEY_RATE_LIMIT": _read_key_limit(environ),
        "SQLITE_SYNCHRONOUS": _sqlite_synchronous(environ),
        "TRUSTED_PROXIES": _trusted_proxies(environ),
        "SQLITE_BUSY_TIMEOUT_MS": _busy_timeout(environ),
        "REFUSAL_LOG_PER_SECOND": _refusal_log_rate(environ),
        "ANALYTICS_EXACT_EVENTS": _exact_events(environ),
        "ANALYTICS_FOLD_INTERVAL_S": _fold_interval(environ),
        "ANALYTICS_FOLD_BEHIND_EVENTS": _fold_behind(environ),
        "REPORT_CATCHUP_BUDGET_MS": _catch_up_budget(environ),
        "GEOIP_DATABASE": _geoip_database(environ),
        "ANALYTICS_STORE_DIR": _store_dir(environ, instance_path),
        "SMTP_URL": _smtp_url(environ),
        "MAIL_FROM": _mail_from(environ, _smtp_url(environ)),
        "HOST": environ.get("HOST", "127.0.0.1"),
        "PORT": _port(environ),
        "WEB_CONCURRENCY": _workers(environ),
    }


def gunicorn_settings(environ: Mapping[str, str]) -> dict:
    """Validate the app server's settings (HOST, PORT, WEB_CONCURRENCY, WEB_THREADS):
    server.py's (gunicorn's sync workers have one thread each), and
    gunicorn.conf.py's for the same app on gunicorn."""
    host = environ.get("HOST", "127.0.0.1").strip()
    if not host or any(c.isspace() for c in host):
        raise ConfigError(f"HOST must be an address like 127.0.0.1 or 0.0.0.0, got {host[:40]!r}")
    return {
        "host": host,
        "port": _port(environ),
        "workers": _workers(environ),
        "threads": _threads(environ),
    }
