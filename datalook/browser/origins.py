"""Which web origins may send a site's browser events (CORS for POST /collect)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidOrigin(ValueError):
    """The text is not an http(s) origin; the message says why."""


def normalise_origin(text: str) -> str:
    """Turn `HTTPS://Shop.example:443/` into `https://shop.example`; raise InvalidOrigin."""
    raw = (text or "").strip()
    parts = urlsplit(raw)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidOrigin(
            f"an origin is http(s)://host[:port], like http://localhost:3000; got {raw[:80]!r}"
        )
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query:
        raise InvalidOrigin(f"an origin has no path, query or user name; got {raw[:80]!r}")
    try:
        port = parts.port
        host = parts.hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise InvalidOrigin(f"that origin has an invalid host or port: {raw[:80]!r}") from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def default_origins(domain: str) -> list[str]:
    """The origins every site allows: its own domain, over https and http."""
    return [f"https://{domain}", f"http://{domain}"]


def added_origins(stored: str | None) -> list[str]:
    """The origins the owner added, from the site's stored JSON list."""
    return json.loads(stored) if stored else []


def allowed_origins(domain: str, stored: str | None) -> list[str]:
    """Every origin allowed to send events for a site."""
    defaults = default_origins(domain)
    return defaults + [origin for origin in added_origins(stored) if origin not in defaults]


def is_allowed(origin: str | None, domain: str, stored: str | None) -> bool:
    """Return whether a request's Origin header names an allowed origin."""
    if not origin or origin == "null":
        return False
    try:
        normal = normalise_origin(origin)
    except InvalidOrigin:
        return False
    return normal in allowed_origins(domain, stored)
