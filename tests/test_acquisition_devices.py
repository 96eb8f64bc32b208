"""User-Agent -> device class, browser and OS (ua-parser with its Rust accelerator)."""

from __future__ import annotations

import pytest

from datalook.acquisition import devices
from datalook.acquisition.devices import DEVICES, Device, device_of

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (IPHONE_SAFARI, Device("mobile", "Safari", "17.4", "iOS", "17.4")),
        (ANDROID_CHROME, Device("mobile", "Chrome", "124", "Android", "14")),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            Device("tablet", "Safari", "17.4", "iOS", "17.4"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/123.0.6312.99 Safari/537.36",
            Device("tablet", "Chrome", "123", "Android", "13"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
            Device("desktop", "Edge", "124", "Windows", "10"),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
            Device("desktop", "Firefox", "125", "macOS", "10.15"),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36",
            Device("desktop", "Chrome", "124", "Linux", None),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.4.1 Safari/605.1.15",
            Device("desktop", "Safari", "17.4", "macOS", "10.15"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
            Device("desktop", "Firefox", "125", "Windows", "10"),
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36",
            Device("desktop", "Chrome", "124", "ChromeOS", "14541"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
            "like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
            Device("mobile", "Chrome", "124", "iOS", "17.4"),
        ),
        (
            "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
            Device("mobile", "Firefox", "125", "Android", "14"),
        ),
        (
            "Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
            Device("tablet", "Firefox", "125", "Android", "14"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Silk/124.2.1 like Chrome/124.0.6367.82 Safari/537.36",
            Device("tablet", "Amazon Silk", "124.2", "Android", "11"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
            Device("mobile", "Samsung Internet", "24", "Android", "14"),
        ),
        (
            "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 "
            "Edge/15.14900",
            Device("mobile", "Edge", "15.14900", "Windows Phone", "10"),
        ),
        (
            # Windows' "Tablet PC" token is a touch-capable desktop, not a tablet.
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; Touch; Tablet PC 2.0; "
            "rv:11.0) like Gecko",
            Device("desktop", "Internet Explorer", "11", "Windows", "10"),
        ),
        # Bots and HTTP clients.
        ("curl/8.5.0", Device("bot", "curl", "8.5", "Other", None)),
        ("Wget/1.21.4", Device("bot", "Wget", "1.21", "Other", None)),
        ("python-requests/2.31.0", Device("bot", "Python Requests", "2.31", "Other", None)),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Device("bot", "Googlebot", "2.1", "Other", None),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/124.0.0.0 Safari/537.36",
            Device("bot", "HeadlessChrome", "124", "Linux", None),
        ),
        ("", Device("bot", "Other", None, "Other", None)),
        ("   ", Device("bot", "Other", None, "Other", None)),
        (None, Device("bot", "Other", None, "Other", None)),
        ("something unknown", Device("desktop", "Other", None, "Other", None)),
    ],
)
def test_device_of(user_agent, expected):
    assert device_of(user_agent) == expected


def test_device_classes():
    assert DEVICES == ("desktop", "tablet", "mobile", "bot")


def test_the_rust_accelerator_runs_the_rules():
    # ua-parser-rs is pinned in requirements.txt; without it parsing is about 30 times slower.
    assert devices.ACCELERATED
    assert type(devices._parser().resolver).__module__ == "ua_parser.regex"


def test_results_are_cached_by_user_agent():
    devices._cached.cache_clear()
    first = device_of(ANDROID_CHROME)
    assert devices.cache_info().misses == 1
    assert device_of(ANDROID_CHROME) is first
    assert device_of(f"  {ANDROID_CHROME}  ") is first  # trimmed before the cache
    info = devices.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (2, 1, devices.CACHE_SIZE)


def test_only_the_first_512_characters_are_read():
    devices._cached.cache_clear()
    long_a = IPHONE_SAFARI + " " + "x" * 5000
    long_b = IPHONE_SAFARI + " " + "x" * 6000
    assert device_of(long_a) is device_of(long_b)  # one entry: the same first 512 characters
    assert devices.cache_info().currsize == 1
    assert device_of(long_a).device == "mobile"


MAC = device_of(
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
WINDOWS = device_of(
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
)


@pytest.mark.parametrize(
    ("found", "width", "expected"),
    [
        (MAC, None, "desktop"),
        (MAC, 1440, "desktop"),
        (MAC, 1280, "desktop"),
        (MAC, 1024, "tablet"),  # an iPad asking for the desktop site
        (MAC, 820, "tablet"),
        (MAC, 390, "mobile"),  # an iPhone asking for the desktop site
        (WINDOWS, 1024, "desktop"),
        (WINDOWS, 360, "mobile"),
        (MAC, 0, "desktop"),
    ],
)
def test_the_screen_width_corrects_a_desktop_class(found, width, expected):
    corrected = devices.with_screen(found, width)
    assert corrected.device == expected
    assert (corrected.browser, corrected.os) == (found.browser, found.os)


def test_the_screen_width_never_changes_another_class():
    phone = device_of(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
    )
    assert devices.with_screen(phone, 2560) == phone
