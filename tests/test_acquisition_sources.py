"""Referrer / utm_source -> readable source, the stored referrer form, the data file's checks,
and the acquisition package's independence from Flask and the database."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from datalook.acquisition import sources
from datalook.acquisition.sources import (
    DEFAULT_PAYMENT_HOSTS,
    DIRECT,
    SIGN_IN_HOSTS,
    category_of,
    host_of,
    referrer_of,
    source_name,
    source_of,
)

OWN = ("www.shop.example",)


@pytest.mark.parametrize(
    ("referrer", "utm_source", "expected"),
    [
        # Search engines, every google.* host.
        ("https://www.google.com/", None, "Google"),
        ("https://google.com/search?q=datalook", None, "Google"),
        ("https://www.google.co.uk/", None, "Google"),
        ("https://www.google.de/", None, "Google"),
        ("https://www.google.com.au/url?q=x", None, "Google"),
        ("https://news.google.com/articles/abc", None, "Google"),
        ("https://www.googleadservices.com/pagead/aclk?sa=L", None, "Google"),
        ("https://www.bing.com/search?q=x", None, "Bing"),
        ("https://cn.bing.com/", None, "Bing"),
        ("https://duckduckgo.com/", None, "DuckDuckGo"),
        ("https://search.yahoo.com/search?p=x", None, "Yahoo"),
        ("https://uk.search.yahoo.com/", None, "Yahoo"),
        ("https://yandex.ru/search/?text=x", None, "Yandex"),
        ("https://yandex.com.tr/", None, "Yandex"),
        ("https://www.baidu.com/link?url=x", None, "Baidu"),
        ("https://www.ecosia.org/search?q=x", None, "Ecosia"),
        ("https://search.brave.com/search?q=x", None, "Brave"),
        # Social networks and communities.
        ("https://t.co/AbCdEf", None, "Twitter"),
        ("https://twitter.com/someone/status/1", None, "Twitter"),
        ("https://x.com/someone", None, "Twitter"),
        ("https://mobile.twitter.com/", None, "Twitter"),
        ("https://www.facebook.com/", None, "Facebook"),
        ("https://m.facebook.com/", None, "Facebook"),
        ("https://l.facebook.com/l.php?u=x", None, "Facebook"),
        ("https://fb.me/abc", None, "Facebook"),
        ("https://l.instagram.com/?u=x", None, "Instagram"),
        ("https://www.linkedin.com/feed/", None, "LinkedIn"),
        ("https://lnkd.in/abc", None, "LinkedIn"),
        ("https://old.reddit.com/r/python/", None, "Reddit"),
        ("https://news.ycombinator.com/item?id=1", None, "Hacker News"),
        ("https://www.youtube.com/watch?v=x", None, "YouTube"),
        ("https://youtu.be/x", None, "YouTube"),
        ("https://www.pinterest.co.uk/pin/1/", None, "Pinterest"),
        ("https://www.producthunt.com/posts/datalook", None, "Product Hunt"),
        ("https://mastodon.social/@someone", None, "Mastodon"),
        ("https://github.com/org/repo", None, "GitHub"),
        # AI assistants.
        ("https://chatgpt.com/", None, "ChatGPT"),
        ("https://chat.openai.com/", None, "ChatGPT"),
        ("https://www.perplexity.ai/search/x", None, "Perplexity"),
        ("https://gemini.google.com/app", None, "Gemini"),
        # The most specific entry wins over google.*.
        ("https://mail.google.com/mail/u/0/", None, "Gmail"),
        ("https://docs.google.com/document/d/1", None, "Google Docs"),
        # Unknown hosts: the host without www.
        ("https://www.example.org/blog/post?id=1", None, "example.org"),
        ("https://blog.example.org/", None, "blog.example.org"),
        ("http://example.net:8080/x", None, "example.net"),
        # Lookalikes are not the real thing.
        ("https://google.evil.example/", None, "google.evil.example"),
        ("https://notgoogle.com/", None, "notgoogle.com"),
        ("https://x.com.evil.example/", None, "x.com.evil.example"),
        # The site's own hosts (and their subdomains) are not a source.
        ("https://www.shop.example/pricing", None, DIRECT),
        ("https://shop.example/", None, DIRECT),
        ("https://app.shop.example/login", None, DIRECT),
        ("https://SHOP.EXAMPLE./", None, DIRECT),
        # Checkouts send the buyer back: not a source.
        ("https://checkout.stripe.com/c/pay/cs_live_abc", None, DIRECT),
        ("https://hooks.stripe.com/3d_secure_2/hosted", None, DIRECT),
        ("https://www.paypal.com/checkoutnow?token=x", None, DIRECT),
        ("https://paypal.com/", None, DIRECT),
        ("https://pay.google.com/", None, DIRECT),
        # utm_source wins over the referrer, normalised when it is a known alias or host.
        ("https://www.google.com/", "newsletter", "Newsletter"),
        ("https://t.co/x", "google", "Google"),
        ("https://example.org/", " fb ", "Facebook"),
        ("https://example.org/", "FB", "Facebook"),
        (None, "twitter", "Twitter"),
        (None, "ig", "Instagram"),
        (None, "hn", "Hacker News"),
        (None, "x.com", "Twitter"),
        (None, "chatgpt.com", "ChatGPT"),
        (None, "https://news.ycombinator.com/", "Hacker News"),
        (None, "Product Hunt", "Product Hunt"),
        (None, "email", "Email"),
        # ... and kept as given otherwise: trimmed, control characters dropped.
        (None, "  Spring Partner  ", "Spring Partner"),
        (None, "partner\x00site", "partnersite"),
        (None, "example.org", "example.org"),
        # A utm_source wins even over the site's own referrer.
        ("https://www.shop.example/", "newsletter", "Newsletter"),
        # Blank utm_source is absent.
        ("https://t.co/x", "   ", "Twitter"),
        ("https://t.co/x", "", "Twitter"),
        # No referrer, no utm: direct.
        (None, None, DIRECT),
        ("", None, DIRECT),
        # Garbage and non-http referrers count as none.
        ("not a url", None, DIRECT),
        ("javascript:alert(1)", None, DIRECT),
        ("android-app://com.google.android.gm/", None, DIRECT),
        ("ftp://example.org/file", None, DIRECT),
        ("https://", None, DIRECT),
        ("https://exa mple.org/", None, DIRECT),
        ("http://[::1", None, DIRECT),
        ("https://example.org:99999/", None, DIRECT),
        ("https://-bad-.example/", None, DIRECT),
    ],
)
def test_source_of(referrer, utm_source, expected):
    assert source_of(referrer, utm_source, own_hosts=OWN) == expected


def test_utm_source_is_capped_at_100_characters():
    assert source_of(None, "a" * 150) == "a" * 100
    assert sources.MAX_SOURCE_LENGTH == 100


def test_own_hosts_accept_urls_ports_and_case():
    for own in (["https://Shop.Example"], ["shop.example:8443"], {"WWW.SHOP.EXAMPLE"}):
        assert source_of("https://shop.example/a", None, own_hosts=own) == DIRECT
    assert source_of("https://othershop.example/", None, own_hosts=["shop.example"]) == (
        "othershop.example"
    )


def test_ignored_hosts_are_configurable():
    # An empty list makes a checkout an ordinary referrer...
    assert source_of("https://checkout.stripe.com/x", None, ignored_hosts=()) == (
        "checkout.stripe.com"
    )
    # ... and sign-in pages are ignored only when asked to.
    assert source_of("https://accounts.google.com/o/oauth2", None) == "Google"
    both = DEFAULT_PAYMENT_HOSTS | SIGN_IN_HOSTS
    assert source_of("https://accounts.google.com/o/oauth2", None, ignored_hosts=both) == DIRECT
    assert source_of("https://pay.psp.example/x", None, ignored_hosts=["pay.psp.example"]) == (
        DIRECT
    )


@pytest.mark.parametrize(
    ("click_ids", "expected"),
    [
        ({"gclid"}, "Google"),
        ({"wbraid"}, "Google"),
        ({"msclkid"}, "Bing"),
        ({"fbclid"}, "Facebook"),
        ({"li_fat_id"}, "LinkedIn"),
        ({"ttclid"}, "TikTok"),
        ({"unknown_id"}, DIRECT),
        (set(), DIRECT),
    ],
)
def test_click_ids_name_the_network_when_nothing_else_does(click_ids, expected):
    assert source_of(None, None, click_ids=click_ids) == expected
    # A referrer or a utm_source comes first.
    assert source_of("https://example.org/", None, click_ids=click_ids) == "example.org"
    assert source_of(None, "partner", click_ids=click_ids) == "partner"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("https://www.google.com/search?q=secret+terms", "https://www.google.com/search"),
        ("https://example.org/path/page?token=abc#section", "https://example.org/path/page"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org?x=1", "https://example.org/"),
        ("HTTPS://User:Password@Example.ORG:443/A/B", "https://example.org/A/B"),
        ("http://example.org:80/", "http://example.org/"),
        ("http://example.org:8080/x", "http://example.org:8080/x"),
        ("  https://example.org/x  ", "https://example.org/x"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://203.0.113.9/x?y", "http://203.0.113.9/x"),
        (None, None),
        ("", None),
        ("   ", None),
        ("example.org/page", None),
        ("//example.org/page", None),
        ("javascript:alert(1)", None),
        ("data:text/html,hi", None),
        ("android-app://com.google.android.gm/", None),
        ("https://exa mple.org/", None),
        ("https://example.org/a\nb", None),
        ("https://example.org:70000/", None),
        ("http://[::1", None),
        ("https://under_score_is_ok.example/", "https://under_score_is_ok.example/"),
        ("https://" + "a" * 300 + ".example/", None),
    ],
)
def test_referrer_of_keeps_origin_and_path_only(raw, stored):
    assert referrer_of(raw) == stored


def test_referrer_of_caps_the_stored_form():
    stored = referrer_of("https://example.org/" + "p" * 2000 + "?q=1")
    assert stored is not None
    assert len(stored) == sources.MAX_REFERRER_LENGTH
    assert stored.startswith("https://example.org/ppp")


def test_referrer_of_rejects_non_strings():
    assert referrer_of(b"https://example.org/") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("referrer", "host"),
    [
        ("https://WWW.Google.co.uk/search?q=x", "www.google.co.uk"),
        ("https://example.org/", "example.org"),
        ("https://example.org/path", "example.org"),
        ("ftp://example.org/", None),
        (None, None),
    ],
)
def test_host_of(referrer, host):
    assert host_of(referrer) == host


@pytest.mark.parametrize(
    ("source", "category"),
    [
        ("Google", "search"),
        ("google", "search"),
        ("www.google.de", "search"),
        ("Bing", "search"),
        ("Twitter", "social"),
        ("x.com", "social"),
        ("Hacker News", "social"),
        ("Mastodon", "social"),
        ("YouTube", "video"),
        ("Newsletter", "email"),
        ("newsletter", "email"),
        ("Gmail", "email"),
        ("GitHub", None),
        ("ChatGPT", None),
        ("example.org", None),
        ("Spring Partner", None),
        ("", None),
        (None, None),
    ],
)
def test_category_of(source, category):
    assert category_of(source) == category


def test_source_name_of_blank_is_none():
    assert source_name("  ") is None
    assert source_name(None) is None


def test_every_source_in_the_data_file_is_reachable():
    table = sources.load_table(
        (Path(sources.__file__).parent / sources.DATA_FILE).read_text(encoding="utf-8")
    )
    for alias, source in table.aliases.items():
        assert source_name(alias) == source.name
    for host, source in table.hosts.items():
        assert source_of(f"https://{host}/", None, ignored_hosts=()) == source.name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[sources]]\nname = "A"\n[[sources]]\nname = "A"\n', "repeated source name"),
        ('[[sources]]\ncategory = "search"\n', "missing or repeated"),
        ('[[sources]]\nname = "A"\ncategory = "news"\n', "unknown category"),
        ('[[sources]]\nname = "A"\nhosts = "a.example"\n', "list of strings"),
        (
            '[[sources]]\nname = "A"\nhosts = ["a.example"]\n'
            '[[sources]]\nname = "B"\nhosts = ["a.example"]\n',
            "listed twice",
        ),
        (
            '[[sources]]\nname = "A"\naliases = ["x"]\n[[sources]]\nname = "B"\naliases = ["x"]\n',
            "names two sources",
        ),
    ],
)
def test_a_malformed_data_file_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        sources.load_table(text)


# The acquisition package runs anywhere: ingestion, reports, scripts. It imports only the
# standard library, its own modules and these libraries.
ALLOWED = {"ua_parser", "iptocc", "maxminddb"}


def test_the_package_needs_no_flask_and_no_database():
    package = Path(sources.__file__).parent
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    outside = imported - ALLOWED - set(sys.stdlib_module_names) - {"__future__"}
    assert outside == set()
    assert imported & ALLOWED == ALLOWED


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("https://www.google.com/search?q=x", "www.google.com"),
        ("https://shop.example/pricing", None),
        ("https://www.shop.example/", None),
        ("https://blog.shop.example/a", None),
        ("https://checkout.stripe.com/c/pay", None),
        ("http://localhost:3000/x", None),
        ("android-app://com.google.android.gm/", None),
        ("https://1password.com/", "1password.com"),
        ("http://203.0.113.9/", "203.0.113.9"),
        (None, None),
    ],
)
def test_counted_host_is_the_host_of_a_referrer_that_is_a_source(referrer, expected):
    assert sources.counted_host(referrer, ("shop.example", "http://localhost:3000")) == expected
