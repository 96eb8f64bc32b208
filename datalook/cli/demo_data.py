"""The demo's site, visitors and where they come from, as data (`flask demo seed`)."""

from __future__ import annotations

POSTS = [f"/blog/post-{n}" for n in range(1, 19)]
# Where a page leads next (weights); "" ends the session. Plausible walks make the journeys
# and funnels of the demo meaningful (home -> pricing -> sign-up -> app -> checkout).
NEXT: dict[str, dict[str, float]] = {
    "/": {
        "/pricing": 30,
        "/features": 18,
        "/blog": 12,
        "/docs": 10,
        "/login": 10,
        "/signup": 8,
        "/about": 4,
        "": 8,
    },
    "/pricing": {
        "/signup": 30,
        "/features": 12,
        "/checkout": 12,
        "/": 12,
        "/login": 8,
        "/docs": 6,
        "": 20,
    },
    "/features": {"/pricing": 40, "/signup": 15, "/": 15, "/docs": 12, "": 18},
    "/signup": {"/app": 60, "/pricing": 10, "/": 8, "": 22},
    "/login": {"/app": 85, "/": 5, "": 10},
    "/app": {"/app/settings": 20, "/checkout": 15, "/docs/api": 15, "/pricing": 8, "": 42},
    "/app/settings": {"/app": 50, "/checkout": 20, "": 30},
    "/checkout": {"/checkout/success": 45, "/pricing": 20, "/app": 10, "": 25},
    "/checkout/success": {"/app": 60, "": 40},
    "/docs": {"/docs/start": 45, "/docs/api": 25, "/": 10, "": 20},
    "/docs/start": {"/docs/api": 40, "/signup": 20, "/docs": 15, "": 25},
    "/docs/api": {"/docs": 30, "/docs/start": 15, "/signup": 10, "": 45},
    "/blog": {**{post: 4 for post in POSTS}, "/": 10, "": 20},
    "/about": {"/": 40, "/pricing": 30, "": 30},
    **{post: {"/blog": 30, "/": 15, "/signup": 10, "/pricing": 10, "": 35} for post in POSTS},
}
ENTRY: dict[str, float] = {
    "/": 40,
    "/pricing": 8,
    "/docs": 8,
    "/login": 12,
    "/features": 4,
    "/app": 8,
}
ENTRY |= {post: 20 / (rank + 1) for rank, post in enumerate(POSTS)}
PAGES = sorted(NEXT)
RULES = [("signup", 0.5, []), ("paid-customer", 0.3, [9_990_000, 29_000_000, 99_000_000])]
RULES += [("upgrade", 0.2, [20_000_000, 70_000_000])]
PLANS = ["free", "starter", "pro", "enterprise"]
SOURCES = ["google", "newsletter", "direct", "twitter", "partner"]
CUSTOM = ["search", "video-play", "download", "share"]
# Where a session comes from: (weight, bounce share, referrer, utm, ad click ids). A UTM
# campaign of the newsletter is named by the month the session is in ("{month}").
ARRIVALS: list[tuple[float, float, str | None, dict[str, str], tuple[str, ...]]] = [
    (28, 0.25, None, {}, ()),
    (22, 0.30, "https://www.google.com/", {}, ()),
    (3, 0.30, "https://www.google.de/", {}, ()),
    (4, 0.30, "https://duckduckgo.com/", {}, ()),
    (3, 0.30, "https://www.bing.com/", {}, ()),
    (5, 0.45, "https://news.ycombinator.com/item", {}, ()),
    (4, 0.50, "https://t.co/", {}, ()),
    (3, 0.50, "https://www.reddit.com/r/SaaS/", {}, ()),
    (2, 0.50, "https://www.linkedin.com/feed/", {}, ()),
    (3, 0.35, "https://github.com/", {}, ()),
    (2, 0.35, "https://dev.to/some-author/why-we-switched", {}, ()),
    (1, 0.40, "https://www.producthunt.com/posts/datalook", {}, ()),
    (2, 0.35, "https://partner-blog.example/reviews/", {}, ()),
    (
        5,
        0.20,
        None,
        {"source": "newsletter", "medium": "email", "campaign": "newsletter-{month}"},
        (),
    ),
    (
        2,
        0.20,
        None,
        {"source": "newsletter", "medium": "email", "campaign": "onboarding", "content": "day-3"},
        (),
    ),
    (
        3,
        0.40,
        None,
        {
            "source": "google",
            "medium": "cpc",
            "campaign": "brand-search",
            "term": "datalook",
            "content": "ad-a",
        },
        ("gclid",),
    ),
    (
        2,
        0.45,
        None,
        {
            "source": "google",
            "medium": "cpc",
            "campaign": "competitor-search",
            "term": "product analytics",
            "content": "ad-b",
        },
        ("gclid",),
    ),
    (1, 0.45, "https://www.bing.com/", {}, ("msclkid",)),
    (
        3,
        0.50,
        None,
        {
            "source": "linkedin",
            "medium": "paid_social",
            "campaign": "q2-retargeting",
            "content": "carousel",
        },
        (),
    ),
    (2, 0.55, "https://www.facebook.com/", {}, ("fbclid",)),
    (
        2,
        0.35,
        "https://partner-blog.example/",
        {"source": "partner", "medium": "affiliate", "campaign": "partner-program"},
        (),
    ),
    (1, 0.60, None, {"source": "adnetwork", "medium": "display", "campaign": "launch-banners"}, ()),
]
# (weight, User-Agent, screen width): real strings, derived as ingestion derives them.
DEVICES: list[tuple[float, str, int]] = [
    (
        26,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/124.0.0.0 Safari/537.36",
        1920,
    ),
    (
        14,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like"
        " Gecko) Chrome/124.0.0.0 Safari/537.36",
        1512,
    ),
    (
        9,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like"
        " Gecko) Version/17.4 Safari/605.1.15",
        1440,
    ),
    (
        6,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        1920,
    ),
    (3, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", 2560),
    (
        5,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        1366,
    ),
    (
        17,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML,"
        " like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        390,
    ),
    (
        14,
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/124.0.0.0 Mobile Safari/537.36",
        412,
    ),
    (
        3,
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
        " Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        820,
    ),
]
COUNTRIES: dict[str, float] = {"US": 30, "DE": 10, "GB": 9, "IN": 8, "FR": 6, "CA": 5}
COUNTRIES |= {"BR": 4, "NL": 3}
COUNTRIES |= {"JP": 3, "AU": 3, "ES": 2, "SE": 2, "PL": 2, "IT": 2}
