"""Which user agents are bots or headless browsers, whose events are not counted.

A rule list over the User-Agent header, like every peer's. Its limits: a bot that sends a
real browser's User-Agent is counted, and an unusual real browser whose agent contains one
of these words is not; a headless browser that hides its name passes.
"""

from __future__ import annotations

import functools
import re

_BOT_WORDS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|scrape|headless|phantomjs|selenium|webdriver|puppeteer|"
    r"playwright|lighthouse|pagespeed|pingdom|uptime|monitor|preview|facebookexternalhit|"
    r"embedly|curl/|wget/|python-requests|python-urllib|aiohttp|httpx|go-http-client|"
    r"okhttp|java/|libwww|node-fetch|axios/|werkzeug/|cypress",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=2048)  # the same few agents arrive again and again
def is_bot(user_agent: str | None) -> bool:
    """Return whether a User-Agent names a bot, a crawler or a headless browser."""
    if not user_agent or len(user_agent) < 10:
        return True  # real browsers always send a long one
    return _BOT_WORDS.search(user_agent) is not None


# A product token of a User-Agent: "HeadlessChrome/120.0", "Googlebot/2.1", "curl/8.5".
_TOKEN = re.compile(r"[^\s;()/,]+(?:/[^\s;()]*)?")
MAX_NAME = 64


@functools.lru_cache(maxsize=2048)
def bot_name(user_agent: str | None) -> str:
    """A short name for the bot a User-Agent is (is_bot() is true): the product token that
    gave it away without its version ("HeadlessChrome", "Googlebot", "curl"), for the live
    view's "3 requests filtered as bots (HeadlessChrome)"."""
    if not user_agent or not user_agent.strip():
        return "no User-Agent"
    found = _BOT_WORDS.search(user_agent)
    if found is None:
        return "short User-Agent"
    for token in _TOKEN.finditer(user_agent):
        if token.start() <= found.start() < token.end():
            name = token.group(0).split("/", 1)[0].strip("+:.")
            if name:
                return name[:MAX_NAME]
    return found.group(0).strip("/ ")[:MAX_NAME]
