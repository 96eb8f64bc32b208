"""Site domains: normalise what people type into a bare lower-case host name."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidDomain(ValueError):
    """The text is not a domain name; the message says why, for the form."""


def normalise_domain(text: str) -> str:
    """Turn `https://Example.com/` into `example.com`; raise InvalidDomain for garbage."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidDomain("Enter a domain, for example example.com.")
    parts = urlsplit(raw if "://" in raw else f"//{raw}")
    if parts.scheme not in ("", "http", "https"):
        raise InvalidDomain("Enter a web domain such as example.com, not another kind of URL.")
    try:
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        raise InvalidDomain("That does not look like a domain name.") from None
    del port  # a port is accepted in the input and dropped: sites are identified by host
    if parts.username or parts.password:
        raise InvalidDomain("Enter only the domain, without a user name or password.")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidDomain("That does not look like a domain name.") from None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidDomain("That does not look like a domain name, for example example.com.")
    if labels[-1].isdigit():
        raise InvalidDomain("Enter a domain name, not an IP address.")
    return host
