"""The tracker script /js/datalook.js: its bytes, its version, and the snippet that loads it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import rjsmin
from markupsafe import escape

SCRIPT_PATH = Path(__file__).resolve().parent.parent / "static" / "datalook.js"


@functools.cache
def script() -> tuple[bytes, str]:
    """The script's bytes and its version (a digest of its content), read once per process:
    minified (its comments are for its readers, not for every page that loads it)."""
    content = rjsmin.jsmin(SCRIPT_PATH.read_text(encoding="utf-8")).encode()
    return content, hashlib.sha256(content).hexdigest()[:16]


def script_url(base_url: str) -> str:
    """The versioned URL of the script: a new version is a new URL, so caches never serve
    a stale one."""
    return f"{base_url}/js/datalook.js?v={script()[1]}"


def snippet(
    base_url: str, site_key: str, respect_dnt: bool = False, persistent: bool = False
) -> str:
    """The `<script>` tag a site pastes into its pages' `<head>` (HTML source text);
    `persistent`: the site keeps a first-party visitor id (data-persistent)."""
    dnt = " data-respect-dnt" if respect_dnt else ""
    kept = " data-persistent" if persistent else ""
    src, key = escape(script_url(base_url)), escape(site_key)
    return f'<script defer src="{src}" data-site="{key}"{dnt}{kept}></script>'
