"""Device class, browser and operating system of a User-Agent string.

Browser and OS come from ua-parser (the maintained port of the uap-core rules, shipped as
ua-parser-builtins), run by its Rust accelerator ua-parser-rs when installed (about 0.1 ms
per new string) and by its pure-Python resolver otherwise (about 3 ms, 30 times slower).
Results are kept in an LRU cache of CACHE_SIZE strings (a hit costs about 1.5 us): a site
sees few distinct User-Agents.

The device class is one of DEVICES, decided here from the string and ua-parser's device:

- bot: an empty User-Agent, a crawler (ua-parser's "Spider" device) or a plain HTTP client
  or headless browser (curl, Wget, python-requests, HeadlessChrome, ...). Ingestion drops
  bots before this runs; the class keeps any that slip through out of the three below.
- tablet: iPad, Kindle / Silk, Android without "Mobile", a "Tablet" token (not Windows'
  "Tablet PC"), PlayBook. iPadOS 13+ Safari asks for desktop sites with a Mac User-Agent
  and so counts as desktop: no User-Agent rule can tell them apart.
- mobile: iPhone / iPod, Android with "Mobile", a "Mobi" token, Windows Phone, Opera Mini,
  BlackBerry.
- desktop: everything else (computers, also smart TVs and game consoles).

`with_screen` corrects a desktop class with the page's screen width when the browser sends
it: a phone asking for the desktop site, an iPad sending a Mac User-Agent.

Names are made readable and stable for reports: "Mobile Safari" is Safari, "Chrome Mobile"
is Chrome (the device class already says mobile), "Mac OS X" is macOS. Versions keep the
major and a non-zero minor ("17.4", "124"); None when unknown.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import ua_parser
from ua_parser import BasicResolver, load_builtins, load_lazy_builtins

try:
    from ua_parser.regex import Resolver as _FastResolver
except ImportError:  # ua-parser-rs missing: the pure-Python resolver (much slower) serves
    _FastResolver = None  # type: ignore[assignment, misc]

DESKTOP = "desktop"
TABLET = "tablet"
MOBILE = "mobile"
BOT = "bot"
DEVICES = (DESKTOP, TABLET, MOBILE, BOT)
OTHER = "Other"
# Whether the Rust accelerator runs the rules (ua-parser-rs is a pinned requirement).
ACCELERATED = _FastResolver is not None
CACHE_SIZE = 8192
# Only this much of a User-Agent is read (real ones are under 400 characters).
MAX_USER_AGENT = 512

# ua-parser families that are HTTP libraries or automation, not a person's browser.
_CLIENTS = frozenset(
    {
        "curl",
        "wget",
        "python requests",
        "python-urllib",
        "go-http-client",
        "headlesschrome",
        "phantomjs",
        "apache-httpclient",
        "java",
        "okhttp",
        "libwww-perl",
        "aiohttp",
        "httpx",
        "node-fetch",
        "axios",
    }
)
_CLIENT_PREFIX = re.compile(
    r"^(?:curl|wget|python-|go-http-client|java/|okhttp|libwww-perl|aiohttp|httpx|"
    r"node-fetch|axios|postmanruntime|insomnia)",
    re.IGNORECASE,
)
# Tokens as browsers write them (case matters: "KFTRWI" is a Kindle Fire model).
_TABLET = re.compile(r"iPad|Kindle|Silk/|PlayBook|\bKF[A-Z]{2,5}\b|Tablet(?! PC)")
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Windows Phone|Opera Mini|BlackBerry|BB10")
_BROWSERS = {
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari WebView",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome WebView",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "IE": "Internet Explorer",
    "IE Mobile": "Internet Explorer",
}
_SYSTEMS = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}


@dataclass(frozen=True, slots=True)
class Device:
    """What a User-Agent says about the visitor's device, browser and OS."""

    device: str
    browser: str
    browser_version: str | None
    os: str
    os_version: str | None


@functools.cache
def _parser() -> ua_parser.Parser:
    """The ua-parser parser, built on first use (loading the rules takes a few 100 ms)."""
    if _FastResolver is not None:
        return ua_parser.Parser(_FastResolver(load_lazy_builtins()))
    return ua_parser.Parser(BasicResolver(load_builtins()))


def _version(major: str | None, minor: str | None) -> str | None:
    """`major`, with `.minor` when the minor is known and not zero."""
    if not major:
        return None
    return f"{major}.{minor}" if minor and minor.strip("0") else major


def _device_class(ua: str, parsed: ua_parser.Result) -> str:
    """One of DEVICES for the User-Agent `ua` (see the module docstring)."""
    family = parsed.device.family if parsed.device else ""
    browser = parsed.user_agent.family.lower() if parsed.user_agent else ""
    if family == "Spider" or browser in _CLIENTS or _CLIENT_PREFIX.match(ua):
        return BOT
    is_android = "Android" in ua and "Windows Phone" not in ua
    if family == "iPad" or _TABLET.search(ua) or (is_android and "Mobile" not in ua):
        return TABLET
    if family in ("iPhone", "iPod", "Generic Smartphone") or _MOBILE.search(ua):
        return MOBILE
    return DESKTOP


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached(ua: str) -> Device:
    """device_of for a trimmed, capped User-Agent (the cached part)."""
    if not ua:
        return Device(BOT, OTHER, None, OTHER, None)
    parsed = _parser().parse(ua)
    agent, system = parsed.user_agent, parsed.os
    browser = _BROWSERS.get(agent.family, agent.family) if agent else OTHER
    os_name = _SYSTEMS.get(system.family, system.family) if system else OTHER
    return Device(
        device=_device_class(ua, parsed),
        browser=browser,
        browser_version=_version(agent.major, agent.minor) if agent else None,
        os=os_name,
        os_version=_version(system.major, system.minor) if system else None,
    )


def device_of(user_agent: str | None) -> Device:
    """The device class, browser and OS (with versions) of a User-Agent string."""
    if not isinstance(user_agent, str):
        user_agent = ""
    return _cached(user_agent.strip()[:MAX_USER_AGENT])


# Screen widths (CSS pixels, as a page reads screen.width) that correct a desktop class: a
# phone that asked for the desktop site, and an iPad, whose Safari sends a Mac User-Agent
# (iPads are at most 1024 wide in portrait, which screen.width reports; Macs 1280 or more).
PHONE_MAX_WIDTH = 575
IPAD_MAX_WIDTH = 1024


def with_screen(found: Device, screen_width: int | None) -> Device:
    """`found` with its device class corrected by the screen width when the User-Agent
    said desktop: narrower than 576 is mobile, a macOS User-Agent up to 1024 wide is a
    tablet. Any other class, or no width, is kept as the User-Agent says."""
    if found.device != DESKTOP or screen_width is None or screen_width <= 0:
        return found
    if screen_width <= PHONE_MAX_WIDTH:
        device = MOBILE
    elif found.os == "macOS" and screen_width <= IPAD_MAX_WIDTH:
        device = TABLET
    else:
        return found
    return Device(device, found.browser, found.browser_version, found.os, found.os_version)


def cache_info() -> functools._CacheInfo:
    """Hits, misses and size of the User-Agent cache (for tests and diagnostics)."""
    return _cached.cache_info()
