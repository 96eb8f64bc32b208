"""Where a log-in may send the browser next: same-site paths only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A path we follow: printable ASCII without spaces or backslashes. Browsers strip tabs and
# newlines from URLs and read a backslash as a slash, and non-ASCII slashes (U+FF0F, U+2215)
# are folded by some parsers, so anything outside this set is refused rather than cleaned.
_PLAIN_PATH = re.compile(r"/[!-\[\]-~]*\Z")


def is_local_path(target: str | None) -> bool:
    """Whether `target` is a path on this site that a browser cannot read as another host."""
    if not target or not _PLAIN_PATH.match(target) or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc
