"""The default channel grouping: which of CHANNELS a visit belongs to, after GA4's default
channel group, reduced to our ten channels.

GA4's rules are tried in its order and the first that holds wins. The source's category
(search, social, video, email) comes from referrer_sources.toml via sources.category_of;
mediums are compared lowercased and trimmed, "(none)" and "(not set)" counting as absent.
PAID is GA4's paid-medium pattern ^(.*cp.*|ppc|retargeting|paid.*)$.

1. Direct          no source (absent, "(direct)" or sources.DIRECT), no medium, no click id.
   Ad click ids (utm.CLICK_IDS) stand in for what GA4 learns from ad-platform links: they
   apply when the medium is absent or PAID, never over an explicit other medium.
2. Paid Search     search source and PAID medium; or gclid / gbraid / wbraid / msclkid.
3. Paid Social     social (or video) source and PAID medium; or ttclid / li_fat_id / twclid;
   fbclid makes the source social (Meta adds it to every outbound link, paid or not).
4. Display         medium display / banner / expandable / interstitial / cpm; or dclid.
   (A search source with medium cpm is Paid Search first, as in GA4.)
5. Unassigned      any other PAID medium: GA4's "Paid Other", which is not one of ours.
6. Organic Social  social (or video) source, or medium social / social-network /
                   social-media / sm / social network / social media.
7. Organic Search  search source, or medium organic.
8. Referral        medium referral / app / link.
9. Email           source or medium email / e-mail / e_mail / e mail / newsletter, or a
                   source of the email category (Newsletter, Gmail, ...).
10. Affiliates     medium affiliate (or affiliates).
11. Referral       no medium, and the visit came with a referrer (a plain link elsewhere).
12. Unassigned     anything else (e.g. a utm_source without a medium, or medium audio).

GA4 channels outside our ten fall where the rules above put them: its video sources count as
social, shopping and cross-network campaigns as their source's paid channel, Audio, SMS and
push notifications as Unassigned. The campaign name is therefore not consulted today; it is
accepted so that callers pass everything GA4's rules may use.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from . import sources

DIRECT = "Direct"
ORGANIC_SEARCH = "Organic Search"
PAID_SEARCH = "Paid Search"
ORGANIC_SOCIAL = "Organic Social"
PAID_SOCIAL = "Paid Social"
EMAIL = "Email"
REFERRAL = "Referral"
AFFILIATES = "Affiliates"
DISPLAY = "Display"
UNASSIGNED = "Unassigned"
CHANNELS = (
    DIRECT,
    ORGANIC_SEARCH,
    PAID_SEARCH,
    ORGANIC_SOCIAL,
    PAID_SOCIAL,
    EMAIL,
    REFERRAL,
    AFFILIATES,
    DISPLAY,
    UNASSIGNED,
)

PAID = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
DISPLAY_MEDIUMS = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
SOCIAL_MEDIUMS = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
REFERRAL_MEDIUMS = frozenset({"referral", "app", "link"})
EMAIL_WORDS = frozenset({"email", "e-mail", "e_mail", "e mail", "newsletter"})
AFFILIATE_MEDIUMS = frozenset({"affiliate", "affiliates"})
# Click ids only ad clicks carry, by the channel they prove.
SEARCH_AD_CLICK_IDS = frozenset({"gclid", "gbraid", "wbraid", "msclkid"})
SOCIAL_AD_CLICK_IDS = frozenset({"ttclid", "li_fat_id", "twclid"})
DISPLAY_AD_CLICK_IDS = frozenset({"dclid"})
# On every outbound Facebook / Instagram link: social, but not proof of an ad.
SOCIAL_CLICK_IDS = frozenset({"fbclid"})
KNOWN_CLICK_IDS = (
    SEARCH_AD_CLICK_IDS | SOCIAL_AD_CLICK_IDS | DISPLAY_AD_CLICK_IDS | SOCIAL_CLICK_IDS
)

_NO_SOURCE = frozenset({"", "(direct)", "direct", sources.DIRECT.lower()})
_NO_MEDIUM = frozenset({"", "(none)", "(not set)", "none"})
_SOCIAL = frozenset({"social", "video"})


def _words(value: str | None) -> str:
    """A source or medium lowercased with its whitespace trimmed and collapsed."""
    return " ".join(value.lower().split()) if value else ""


def channel_of(
    source: str | None,
    medium: str | None,
    campaign: str | None,
    click_ids: Collection[str],
    referrer_host: str | None,
) -> str:
    """The channel (one of CHANNELS) of a visit, by the rules in the module docstring.

    `source` is a source name as sources.source_of gives it (a raw utm_source or a host
    works too), `medium` the utm_medium, `click_ids` the names of the ad click ids on the
    landing page, `referrer_host` the host of a referrer that counted as a source (None
    when there was none, or it was the site's own or an ignored host).
    """
    del campaign  # consulted by no rule of our ten channels (see the module docstring)
    src = _words(source)
    med = _words(medium)
    if med in _NO_MEDIUM:
        med = ""
    ids = {_words(click_id) for click_id in click_ids} & KNOWN_CLICK_IDS
    # Click ids speak only when no explicit medium says otherwise.
    ids_count = not med or bool(PAID.match(med))
    if src in _NO_SOURCE and not med and not ids:
        return DIRECT
    category = sources.category_of(source) if src not in _NO_SOURCE else None
    if category is None and ids & SOCIAL_CLICK_IDS:
        category = "social"
    paid = bool(PAID.match(med))
    if (category == "search" and paid) or (ids_count and ids & SEARCH_AD_CLICK_IDS):
        return PAID_SEARCH
    if (category in _SOCIAL and paid) or (ids_count and ids & SOCIAL_AD_CLICK_IDS):
        return PAID_SOCIAL
    if med in DISPLAY_MEDIUMS or (ids_count and ids & DISPLAY_AD_CLICK_IDS):
        return DISPLAY
    if paid:
        return UNASSIGNED
    if category in _SOCIAL or med in SOCIAL_MEDIUMS:
        return ORGANIC_SOCIAL
    if category == "search" or med == "organic":
        return ORGANIC_SEARCH
    if med in REFERRAL_MEDIUMS:
        return REFERRAL
    if src in EMAIL_WORDS or med in EMAIL_WORDS or category == "email":
        return EMAIL
    if med in AFFILIATE_MEDIUMS:
        return AFFILIATES
    if not med and referrer_host:
        return REFERRAL
    return UNASSIGNED
