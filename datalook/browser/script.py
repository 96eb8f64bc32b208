"""The tracker script /js/datalook.js: its bytes, its version, and the snippet that loads it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from markupsafe import escape

SCRIPT_PATH = Path(__file__).resolve().parent.parent / "static" / "datalook.js"


@functools.cache
def script() -> tuple[bytes, str]:
    """The script's bytes and its version (a digest of its content), read once per process."""
    content = SCRIPT_PATH.read_bytes()
    return content, hashlib.sha256(content).hexdigest()[:16]


def script_url(base_url: str) -> str:
    """The versioned URL of the script: a new version is a new URL, so caches never serve
    a stale one."""
    return f"{base_url}/js/datalook.js?v={script()[1]}"


def snippet(base_url: str, site_key: str, respect_dnt: bool = False) -> str:
    """The `<script>` tag a site pastes into its pages' `<head>` (HTML source text)."""
    dnt = " data-respect-dnt" if respect_dnt else ""
    src, key = escape(script_url(base_url)), escape(site_key)
    return f'<script defer src="{src}" data-site="{key}"{dnt}></script>'
