"""Campaign parameters and ad click ids of a landing URL or query mapping."""

from __future__ import annotations

import pytest

from datalook.acquisition.utm import (
    CLICK_IDS,
    MAX_CLICK_ID_LENGTH,
    MAX_UTM_LENGTH,
    Utm,
    clean,
    utm_of,
)


@pytest.mark.parametrize(
    ("landing", "expected"),
    [
        (
            "https://shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring"
            "&utm_term=analytics+tool&utm_content=ad%201",
            Utm("google", "cpc", "spring", "analytics tool", "ad 1"),
        ),
        ("https://shop.example/pricing", Utm()),
        ("https://shop.example/?UTM_Source=Google&Utm_Medium=CPC", Utm("Google", "CPC")),
        ("https://shop.example/?utm_source=%20%20news%20&utm_medium=", Utm("news")),
        ("https://shop.example/?utm_source=a&utm_source=b", Utm("a")),  # the first wins
        ("https://shop.example/?utm_source=&utm_source=b", Utm("b")),  # blanks are absent
        ("https://shop.example/?utm_source=x%00y%0A", Utm("xy")),  # control characters
        # Fallbacks for utm_source, in order ref, source, via; only when it is absent.
        ("https://shop.example/?ref=producthunt", Utm("producthunt")),
        ("https://shop.example/?source=hn&via=x", Utm("hn")),
        ("https://shop.example/?via=partner", Utm("partner")),
        ("https://shop.example/?via=partner&ref=blog", Utm("blog")),
        ("https://shop.example/?utm_source=google&ref=blog", Utm("google")),
        ("https://shop.example/?ref=%20&via=partner", Utm("partner")),
        # Hash routing: the query after # counts, the real query wins.
        ("https://shop.example/#/page?utm_source=tw&utm_medium=social", Utm("tw", "social")),
        ("https://shop.example/?utm_source=a#/p?utm_source=b&utm_medium=m", Utm("a", "m")),
        # Paths and bare query strings.
        ("/landing?utm_campaign=spring", Utm(campaign="spring")),
        ("?utm_medium=email", Utm(medium="email")),
        ("utm_source=newsletter&utm_medium=email", Utm("newsletter", "email")),
        # Garbage.
        ("", Utm()),
        ("not a url", Utm()),
        ("http://[::1/?utm_source=x", Utm()),
        (None, Utm()),
    ],
)
def test_utm_values(landing, expected):
    found = utm_of(landing)
    assert (found.source, found.medium, found.campaign, found.term, found.content) == (
        expected.source,
        expected.medium,
        expected.campaign,
        expected.term,
        expected.content,
    )


def test_click_ids():
    found = utm_of(
        "https://shop.example/?gclid=Cj0KCQ&fbclid=IwAR1&msclkid=abc&dclid=d&ttclid=t"
        "&li_fat_id=l&twclid=w&gbraid=g&wbraid=b&other_id=z&GCLID=ignored"
    )
    assert found.click_ids == {
        "gclid": "Cj0KCQ",
        "gbraid": "g",
        "wbraid": "b",
        "msclkid": "abc",
        "fbclid": "IwAR1",
        "ttclid": "t",
        "li_fat_id": "l",
        "twclid": "w",
        "dclid": "d",
    }
    assert set(found.click_ids) == set(CLICK_IDS)
    assert utm_of("https://shop.example/?gclid=").click_ids == {}


def test_values_are_capped():
    found = utm_of(
        f"https://shop.example/?utm_campaign={'c' * 500}&gclid={'g' * 500}&utm_term=%20{'t' * 99}"
    )
    assert found.campaign == "c" * MAX_UTM_LENGTH
    assert found.click_ids["gclid"] == "g" * MAX_CLICK_ID_LENGTH
    assert found.term == "t" * 99  # trimmed before the cap
    assert (MAX_UTM_LENGTH, MAX_CLICK_ID_LENGTH) == (100, 200)


def test_a_query_mapping():
    found = utm_of(
        {
            "utm_source": ["newsletter", "ignored"],
            "UTM_MEDIUM": "email",
            "utm_campaign": [],
            "fbclid": ("x",),
            "utm_term": 42,
            3: "not a key",
        }
    )
    assert found == Utm("newsletter", "email", None, None, None, {"fbclid": "x"})


@pytest.mark.parametrize(
    ("value", "limit", "cleaned"),
    [
        ("  a b  ", 100, "a b"),
        ("\tab\x7f\u0085c ", 100, "abc"),
        ("abcdef", 3, "abc"),
        ("ab   cd", 4, "ab"),  # no trailing space after the cut
        ("   ", 100, None),
        ("", 100, None),
        (None, 100, None),
        (42, 100, None),
    ],
)
def test_clean(value, limit, cleaned):
    assert clean(value, limit) == cleaned
