"""Campaign parameters of a landing page: the five utm_* values and the ad click ids.

`utm_of` reads them from a landing URL (or a bare query string, or an already parsed query
mapping). Keys are matched case-insensitively and the first occurrence of a key wins. When
utm_source is absent, the first present of `ref`, `source` and `via` stands in for it (the
?ref=producthunt style of links). Every value is cleaned by `clean`: whitespace trimmed,
control characters removed, empty values dropped, and capped:

- utm_* values (and the fallbacks): MAX_UTM_LENGTH (100) characters;
- click ids: MAX_CLICK_ID_LENGTH (200) characters (a gclid is about 100).

A click id identifies one ad click; which ids are *present* is what the channel grouping
needs (channels.channel_of takes their names). Storing the values is the caller's decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# Stand-ins for utm_source, in order of preference, used only when utm_source is absent.
SOURCE_FALLBACKS = ("ref", "source", "via")
# Ad click ids: Google Ads (gclid, and gbraid/wbraid on iOS), Microsoft Ads (msclkid), Meta
# (fbclid: added to every outbound Facebook/Instagram link, paid or not), TikTok (ttclid),
# LinkedIn (li_fat_id), X (twclid), Google Campaign Manager / Display & Video 360 (dclid).
CLICK_IDS = (
    "gclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "fbclid",
    "ttclid",
    "li_fat_id",
    "twclid",
    "dclid",
)

MAX_UTM_LENGTH = 100
MAX_CLICK_ID_LENGTH = 200
# Only this much of a landing URL is read: a query beyond it is not a campaign link.
MAX_URL_LENGTH = 8192

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Utm:
    """The campaign parameters of one landing page; None where absent."""

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    content: str | None = None
    # Click id name (one of CLICK_IDS) -> its cleaned value, for those present.
    click_ids: Mapping[str, str] = field(default_factory=dict)


def clean(value: object, limit: int = MAX_UTM_LENGTH) -> str | None:
    """Return `value` trimmed, without control characters, capped at `limit` characters;
    None when it is not a string or nothing is left."""
    if not isinstance(value, str):
        return None
    text = _CONTROL.sub("", value).strip()[:limit].strip()
    return text or None


def _first(value: object) -> object:
    """The first item of a multi-valued query entry (a list or tuple), else the value."""
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _query_of(url: str) -> dict[str, str]:
    """Lowercased key -> first value of a URL's query, or of a bare query string.

    A query inside the fragment (`/#/page?utm_source=x`, hash routing) is read too; the
    real query wins over it.
    """
    text = url.strip()[:MAX_URL_LENGTH]
    try:
        parts = urlsplit(text)
    except ValueError:
        return {}
    if "?" in text or "://" in text or text.startswith(("/", "#")):
        query = parts.query
    else:
        query = text  # a bare query string: "utm_source=x&utm_medium=y"
    fragment = parts.fragment
    fragment_query = fragment.split("?", 1)[1] if "?" in fragment else ""
    found: dict[str, str] = {}
    for part in (query, fragment_query):
        for key, value in parse_qsl(part, keep_blank_values=False):
            found.setdefault(key.strip().lower(), value)
    return found


def utm_of(landing: str | Mapping[str, object] | None) -> Utm:
    """Extract the utm_* values and click ids from a landing URL, a query string, or a query
    mapping (values may be strings or lists of strings, as in a parsed query)."""
    if landing is None:
        return Utm()
    query: dict[str, object] = {}
    if isinstance(landing, str):
        query.update(_query_of(landing))
    else:
        for key, value in landing.items():
            if isinstance(key, str):
                query.setdefault(key.strip().lower(), _first(value))
    values = {name: clean(query.get(name)) for name in UTM_FIELDS}
    if values["utm_source"] is None:
        values["utm_source"] = next(
            (found for key in SOURCE_FALLBACKS if (found := clean(query.get(key)))), None
        )
    click_ids = {
        name: found
        for name in CLICK_IDS
        if (found := clean(query.get(name), MAX_CLICK_ID_LENGTH)) is not None
    }
    return Utm(
        source=values["utm_source"],
        medium=values["utm_medium"],
        campaign=values["utm_campaign"],
        term=values["utm_term"],
        content=values["utm_content"],
        click_ids=click_ids,
    )
