"""Where a visit came from, as a readable source name: "Google", "Twitter", "Newsletter",
"example.org", or DIRECT ("Direct / None").

The names, the referrer hosts and utm_source aliases behind them, and each source's category
(search, social, video, email; channels.py groups by it) live in referrer_sources.toml beside
this module, read once at import.

Rules of `source_of`, in order:

1. A utm_source wins over the referrer. A known alias or host ("google", "fb", "newsletter",
   "x.com") becomes its readable name; any other value is kept as given, trimmed, without
   control characters, at most MAX_SOURCE_LENGTH characters.
2. Else the referrer's host: a known host gives its readable name, any other host is shown
   without a leading "www.". A referrer on the site's own hosts, or on one of the ignored
   hosts (by default DEFAULT_PAYMENT_HOSTS: a checkout that sends the buyer back), is no
   source; a host matches an entry when it equals it or is a subdomain of it.
3. Else, when the landing page carried an ad click id (utm.CLICK_IDS) but the browser sent
   no referrer, the network behind the id (gclid -> Google).
4. Else DIRECT.

Referrers are stored as `referrer_of` returns them: scheme, host, port and path only. The
query and fragment (search terms, tokens, personal data) are never kept. Only http and https
referrers count; android-app:// and other schemes are treated as absent.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import tomllib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from .utm import CLICK_IDS, clean

DIRECT = "Direct / None"
MAX_SOURCE_LENGTH = 100
# A stored referrer is cut to this many characters (scheme, host and a long path).
MAX_REFERRER_LENGTH = 500
CATEGORIES = frozenset({"search", "social", "video", "email"})
DATA_FILE = "referrer_sources.toml"

# Hosts that hand a visitor back to the site in the middle of a purchase: counting them as
# sources would credit the payment provider with the sale. Configurable: pass your own
# `ignored_hosts` to source_of (e.g. DEFAULT_PAYMENT_HOSTS | {"pay.example-psp.com"}).
DEFAULT_PAYMENT_HOSTS: frozenset[str] = frozenset(
    {
        "checkout.stripe.com",
        "billing.stripe.com",  # the customer portal
        "hooks.stripe.com",  # 3-D Secure redirects
        "paypal.com",
        "www.paypal.com",
        "pay.google.com",
        "checkout.paddle.com",
        "buy.paddle.com",
        "lemonsqueezy.com",
        "checkout.shopify.com",
        "pay.shopify.com",
        "checkout.mollie.com",
        "pay.amazon.com",
    }
)
# Sign-in providers return the visitor to the site the same way. Not ignored by default (the
# default is the payment list); a site offering these sign-ins should pass
# DEFAULT_PAYMENT_HOSTS | SIGN_IN_HOSTS, or accounts.google.com would count as Google.
SIGN_IN_HOSTS: frozenset[str] = frozenset(
    {
        "accounts.google.com",
        "appleid.apple.com",
        "login.microsoftonline.com",
        "login.live.com",
    }
)
# The network behind an ad click id, for landings with an id but no referrer.
CLICK_ID_SOURCES = {
    "gclid": "Google",
    "gbraid": "Google",
    "wbraid": "Google",
    "dclid": "Google",
    "msclkid": "Bing",
    "fbclid": "Facebook",
    "ttclid": "TikTok",
    "li_fat_id": "LinkedIn",
    "twclid": "Twitter",
}

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Whitespace or control characters anywhere make a referrer unusable.
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")
# Second-level labels under which countries register names: google.co.uk, google.com.au.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or", "go", "gob"})


@dataclass(frozen=True)
class Source:
    """A named source from the data file and its category (None: a plain referral)."""

    name: str
    category: str | None


@dataclass(frozen=True)
class _Table:
    """The data file, indexed: exact hosts, `label.*` wildcards, aliases and names."""

    hosts: dict[str, Source]
    wildcards: dict[str, Source]
    aliases: dict[str, Source]


def _strings(entry: dict, key: str) -> list[str]:
    """The list of strings under `key` of one data-file entry (empty when absent)."""
    values = entry.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{DATA_FILE}: {entry.get('name')!r}: {key} must be a list of strings")
    return [v.strip().lower() for v in values]


def load_table(text: str) -> _Table:
    """Parse and check the data file's text; raise ValueError on a malformed entry."""
    hosts: dict[str, Source] = {}
    wildcards: dict[str, Source] = {}
    aliases: dict[str, Source] = {}
    seen: set[str] = set()
    for entry in tomllib.loads(text).get("sources", []):
        name, category = entry.get("name"), entry.get("category")
        if not isinstance(name, str) or not name or name in seen:
            raise ValueError(f"{DATA_FILE}: missing or repeated source name {name!r}")
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"{DATA_FILE}: {name!r}: unknown category {category!r}")
        seen.add(name)
        source = Source(name, category)
        for host in _strings(entry, "hosts"):
            table = wildcards if host.endswith(".*") else hosts
            key = host.removesuffix(".*")
            if key in table:
                raise ValueError(f"{DATA_FILE}: host {host!r} is listed twice")
            table[key] = source
        for alias in [name.lower(), *_strings(entry, "aliases")]:
            if aliases.get(alias, source) != source:
                raise ValueError(f"{DATA_FILE}: alias {alias!r} names two sources")
            aliases[alias] = source
    return _Table(hosts, wildcards, aliases)


_TABLE = load_table(
    resources.files(__name__.rpartition(".")[0]).joinpath(DATA_FILE).read_text("utf-8")
)


def _is_top_level(labels: list[str]) -> bool:
    """Whether `labels` look like a top-level domain (de, com) or a country's second level
    (co.uk, com.au): what may follow the label of a `google.*` entry."""
    if len(labels) == 1:
        return labels[0].isalpha() and 2 <= len(labels[0]) <= 24
    return len(labels) == 2 and labels[0] in _SECOND_LEVEL and len(labels[1]) == 2


def known_source(host: str) -> Source | None:
    """The data file's source for a (lowercase) host; the entry matching more labels wins."""
    labels = host.split(".")
    for start in range(len(labels)):
        if found := _TABLE.hosts.get(".".join(labels[start:])):
            return found
        wildcard = _TABLE.wildcards.get(labels[start])
        if wildcard and _is_top_level(labels[start + 1 :]):
            return wildcard
    return None


def _valid_host(host: str | None) -> str | None:
    """A URL's host lowercased and checked (a DNS name or an IP address), else None.

    Unicode names become their ASCII (IDNA) form, as browsers send them.
    """
    if not host:
        return None
    host = host.strip().rstrip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(host) > 253:
        return None
    # Only digits and dots (IPv4) or a colon (IPv6) can be an address: parsing costs more
    # than the rest of a referrer's checks, and most hosts are names.
    if ":" in host or host.replace(".", "").isdigit():
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
    return host if _HOSTNAME.match(host) else None


def referrer_of(raw: str | None) -> str | None:
    """The stored form of a referrer URL: `scheme://host[:port]/path`, without query,
    fragment or credentials, at most MAX_REFERRER_LENGTH characters; None for anything that
    is not a well-formed http(s) URL."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or _UNSAFE.search(text):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = _valid_host(parts.hostname)
    if scheme not in _DEFAULT_PORTS or host is None:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"[:MAX_REFERRER_LENGTH]


def host_of(referrer: str | None) -> str | None:
    """The lowercase host of an http(s) referrer (raw or stored form), else None."""
    stored = referrer_of(referrer)
    return _valid_host(urlsplit(stored).hostname) if stored else None


@functools.lru_cache(maxsize=256)
def _normal_hosts(hosts: tuple[str, ...]) -> tuple[str, ...]:
    """Configured hosts ("Example.com", "www.example.com:8443", "https://example.com")
    as bare lowercase hosts without a leading "www."; entries that are no host are left out."""
    normal = []
    for entry in hosts:
        text = entry.strip().lower() if isinstance(entry, str) else ""
        try:
            host = urlsplit(text if "://" in text else f"//{text}").hostname
        except ValueError:
            continue
        if host := _valid_host(host):
            normal.append(host.removeprefix("www."))
    return tuple(normal)


def _matches(host: str, hosts: Iterable[str]) -> bool:
    """Whether `host` equals one of `hosts` or is a subdomain of one."""
    return any(host == entry or host.endswith(f".{entry}") for entry in hosts)


def source_name(utm_source: str | None) -> str | None:
    """A utm_source as a source name: the readable name of a known alias or host, else the
    value trimmed and capped at MAX_SOURCE_LENGTH; None when absent or blank."""
    value = clean(utm_source, MAX_SOURCE_LENGTH)
    if value is None:
        return None
    key = " ".join(value.lower().split())
    if found := _TABLE.aliases.get(key):
        return found.name
    host = _valid_host(key.removeprefix("https://").removeprefix("http://").split("/")[0])
    if host and "." in host and (found := known_source(host)):
        return found.name
    return value


def counted_host(
    referrer: str | None,
    own_hosts: Collection[str] = (),
    ignored_hosts: Collection[str] = DEFAULT_PAYMENT_HOSTS,
) -> str | None:
    """The lowercase host of a referrer that counts as a source: None when there is no
    http(s) referrer, or its host is one of the site's own hosts or an ignored host (or a
    subdomain of one). This is the `referrer_host` that channels.channel_of takes."""
    host = host_of(referrer)
    if host is None:
        return None
    ignored = _normal_hosts(tuple(own_hosts)) + _normal_hosts(tuple(ignored_hosts))
    return None if _matches(host.removeprefix("www."), ignored) else host


def source_of(
    referrer: str | None,
    utm_source: str | None,
    own_hosts: Collection[str] = (),
    ignored_hosts: Collection[str] = DEFAULT_PAYMENT_HOSTS,
    *,
    click_ids: Collection[str] = (),
) -> str:
    """The readable source of a visit (see the module docstring for the rules).

    `own_hosts` are the site's hosts (a leading "www." is ignored, subdomains count as the
    site); `ignored_hosts` are hosts that are never a source; `click_ids` are the names of
    the ad click ids on the landing page (utm.Utm.click_ids).
    """
    if (named := source_name(utm_source)) is not None:
        return named
    host = counted_host(referrer, own_hosts, ignored_hosts)
    if host is not None:
        found = known_source(host)
        return found.name if found else host.removeprefix("www.")
    for click_id in CLICK_IDS:
        if click_id in click_ids:
            return CLICK_ID_SOURCES[click_id]
    return DIRECT


def category_of(source: str | None) -> str | None:
    """The category ("search", "social", "video", "email") of a source given as a readable
    name, a utm_source alias or a host; None for a plain referral or an unknown source."""
    if not source:
        return None
    key = " ".join(source.strip().lower().split())
    if found := _TABLE.aliases.get(key):
        return found.category
    host = _valid_host(key)
    found = known_source(host) if host else None
    return found.category if found else None
