"""Default channel grouping (GA4's rules reduced to our ten channels), alone and end to end
from a landing URL and a referrer."""

from __future__ import annotations

import pytest

from datalook.acquisition import channels
from datalook.acquisition.channels import (
    AFFILIATES,
    CHANNELS,
    DIRECT,
    DISPLAY,
    EMAIL,
    ORGANIC_SEARCH,
    ORGANIC_SOCIAL,
    PAID_SEARCH,
    PAID_SOCIAL,
    REFERRAL,
    UNASSIGNED,
    channel_of,
)
from datalook.acquisition.sources import host_of, source_of
from datalook.acquisition.utm import CLICK_IDS, utm_of


def test_the_ten_channel_names():
    assert CHANNELS == (
        "Direct",
        "Organic Search",
        "Paid Search",
        "Organic Social",
        "Paid Social",
        "Email",
        "Referral",
        "Affiliates",
        "Display",
        "Unassigned",
    )


def test_every_click_id_is_classified():
    assert channels.KNOWN_CLICK_IDS == set(CLICK_IDS)


@pytest.mark.parametrize(
    ("source", "medium", "click_ids", "referrer_host", "expected"),
    [
        # Direct: no source, no medium, no click id.
        (None, None, (), None, DIRECT),
        ("Direct / None", None, (), None, DIRECT),
        ("(direct)", "(none)", (), None, DIRECT),
        ("", "(not set)", (), None, DIRECT),
        # ... but a medium alone or a click id is not direct.
        (None, "email", (), None, EMAIL),
        (None, None, {"gclid"}, None, PAID_SEARCH),
        (None, None, {"fbclid"}, None, ORGANIC_SOCIAL),
        (None, None, {"not_a_click_id"}, None, DIRECT),
        # Paid Search: search source + paid medium, or a search ad click id.
        ("Google", "cpc", (), None, PAID_SEARCH),
        ("Google", "ppc", (), None, PAID_SEARCH),
        ("Bing", "paidsearch", (), None, PAID_SEARCH),
        ("google", "CPC", (), None, PAID_SEARCH),
        ("Google", "retargeting", (), None, PAID_SEARCH),
        ("Google", "paid_search", (), None, PAID_SEARCH),
        ("Google", "cpm", (), None, PAID_SEARCH),  # GA4: Paid Search is tried before Display
        ("Google", None, {"gclid"}, "www.google.com", PAID_SEARCH),
        ("Bing", None, {"msclkid"}, "www.bing.com", PAID_SEARCH),
        ("Google", None, {"gbraid"}, None, PAID_SEARCH),
        ("Google", None, {"wbraid"}, None, PAID_SEARCH),
        ("partner", "cpc", {"gclid"}, None, PAID_SEARCH),
        # Paid Social: social source + paid medium, or a social ad click id.
        ("Facebook", "cpc", (), None, PAID_SOCIAL),
        ("Facebook", "paid", (), None, PAID_SOCIAL),
        ("fb", "paid_social", (), None, PAID_SOCIAL),
        ("LinkedIn", "ppc", (), None, PAID_SOCIAL),
        ("YouTube", "cpv", (), None, PAID_SOCIAL),
        (None, "cpc", {"fbclid"}, None, PAID_SOCIAL),
        ("campaign-x", "paid", {"fbclid"}, None, PAID_SOCIAL),
        ("TikTok", None, {"ttclid"}, None, PAID_SOCIAL),
        (None, None, {"li_fat_id"}, None, PAID_SOCIAL),
        (None, None, {"twclid"}, None, PAID_SOCIAL),
        # Display: display mediums, or a display click id.
        ("partner", "display", (), None, DISPLAY),
        ("partner", "banner", (), None, DISPLAY),
        ("partner", "Expandable", (), None, DISPLAY),
        ("partner", "interstitial", (), None, DISPLAY),
        ("partner", "cpm", (), None, DISPLAY),
        ("Google", "display", {"gclid"}, None, DISPLAY),  # an explicit medium outranks ids
        (None, None, {"dclid"}, None, DISPLAY),
        # Any other paid medium: GA4's "Paid Other", not one of ours.
        ("partner", "cpc", (), None, UNASSIGNED),
        ("Newsletter", "paid", (), None, UNASSIGNED),
        # Organic Social: social source or social medium.
        ("Twitter", None, (), "t.co", ORGANIC_SOCIAL),
        ("x.com", None, (), None, ORGANIC_SOCIAL),
        ("Reddit", "referral", (), "www.reddit.com", ORGANIC_SOCIAL),
        ("Hacker News", None, (), "news.ycombinator.com", ORGANIC_SOCIAL),
        ("YouTube", None, (), "www.youtube.com", ORGANIC_SOCIAL),
        ("Mastodon", None, (), "mastodon.social", ORGANIC_SOCIAL),
        ("partner", "social", (), None, ORGANIC_SOCIAL),
        ("partner", "social-network", (), None, ORGANIC_SOCIAL),
        ("partner", "social media", (), None, ORGANIC_SOCIAL),
        ("partner", "sm", (), None, ORGANIC_SOCIAL),
        ("Facebook", None, {"fbclid"}, "l.facebook.com", ORGANIC_SOCIAL),
        # Organic Search: search source or medium organic.
        ("Google", None, (), "www.google.co.uk", ORGANIC_SEARCH),
        ("DuckDuckGo", None, (), "duckduckgo.com", ORGANIC_SEARCH),
        ("Ecosia", None, (), None, ORGANIC_SEARCH),
        ("partner", "organic", (), None, ORGANIC_SEARCH),
        ("Google", "email", {"gclid"}, None, ORGANIC_SEARCH),  # search source, non-paid medium
        # Referral: medium referral / app / link, or a referrer without a medium.
        ("partner", "referral", (), None, REFERRAL),
        ("partner", "app", (), None, REFERRAL),
        ("partner", "link", (), None, REFERRAL),
        ("example.org", None, (), "example.org", REFERRAL),
        ("GitHub", None, (), "github.com", REFERRAL),
        ("ChatGPT", None, (), "chatgpt.com", REFERRAL),
        ("partner", None, (), "partner.example", REFERRAL),
        # Email: source or medium email / e-mail / e_mail / e mail / newsletter.
        ("Newsletter", None, (), None, EMAIL),
        ("newsletter", "email", (), None, EMAIL),
        ("partner", "e-mail", (), None, EMAIL),
        ("partner", "e_mail", (), None, EMAIL),
        ("partner", "e mail", (), None, EMAIL),
        ("partner", "newsletter", (), None, EMAIL),
        ("email", None, (), None, EMAIL),
        ("Gmail", None, (), "mail.google.com", EMAIL),
        ("Newsletter", None, (), "mail.example", EMAIL),  # before the referrer's Referral
        # Affiliates.
        ("partner", "affiliate", (), None, AFFILIATES),
        ("partner", "Affiliates", (), None, AFFILIATES),
        # Unassigned: a source without a medium and without a referrer, unknown mediums.
        ("partner", None, (), None, UNASSIGNED),
        ("partner", "audio", (), None, UNASSIGNED),
        ("partner", "sms", (), None, UNASSIGNED),
        ("partner", "push", (), "partner.example", UNASSIGNED),
    ],
)
def test_channel_of(source, medium, click_ids, referrer_host, expected):
    assert channel_of(source, medium, None, click_ids, referrer_host) == expected


def test_the_campaign_name_does_not_change_the_channel():
    for campaign in (None, "cross-network", "spring-shopping", "email"):
        assert channel_of("Google", "cpc", campaign, (), None) == PAID_SEARCH
        assert channel_of("partner", None, campaign, (), None) == UNASSIGNED


OWN = ["shop.example"]


@pytest.mark.parametrize(
    ("landing", "referrer", "source", "channel"),
    [
        ("https://shop.example/", None, "Direct / None", DIRECT),
        ("https://shop.example/", "https://www.google.co.uk/", "Google", ORGANIC_SEARCH),
        ("https://shop.example/?gclid=abc", "https://www.google.com/", "Google", PAID_SEARCH),
        ("https://shop.example/?gclid=abc", None, "Google", PAID_SEARCH),
        (
            "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring",
            "https://www.google.com/",
            "Google",
            PAID_SEARCH,
        ),
        ("https://shop.example/?fbclid=x", "https://l.facebook.com/", "Facebook", ORGANIC_SOCIAL),
        (
            "https://shop.example/?utm_source=fb&utm_medium=paid_social&fbclid=x",
            "https://l.facebook.com/",
            "Facebook",
            PAID_SOCIAL,
        ),
        ("https://shop.example/", "https://t.co/abc", "Twitter", ORGANIC_SOCIAL),
        (
            "https://shop.example/?utm_source=newsletter&utm_medium=email",
            None,
            "Newsletter",
            EMAIL,
        ),
        ("https://shop.example/?ref=producthunt", None, "Product Hunt", UNASSIGNED),
        (
            "https://shop.example/?ref=producthunt",
            "https://www.producthunt.com/",
            "Product Hunt",
            REFERRAL,
        ),
        ("https://shop.example/", "https://blog.example.org/post", "blog.example.org", REFERRAL),
        (
            "https://shop.example/thanks",
            "https://checkout.stripe.com/c/pay",
            "Direct / None",
            DIRECT,
        ),
        ("https://shop.example/b", "https://shop.example/a", "Direct / None", DIRECT),
        (
            "https://shop.example/?utm_source=partner&utm_medium=affiliate",
            "https://partner.example/",
            "partner",
            AFFILIATES,
        ),
    ],
)
def test_from_landing_and_referrer(landing, referrer, source, channel):
    utm = utm_of(landing)
    found = source_of(referrer, utm.source, own_hosts=OWN, click_ids=utm.click_ids)
    assert found == source
    # The referrer host counts only when the referrer was a source.
    counted = host_of(referrer) if found != "Direct / None" else None
    assert channel_of(found, utm.medium, utm.campaign, utm.click_ids, counted) == channel
