"""The request of a backend's API call (/event, /events), as little as its path reads.

werkzeug's Request, built for every request, parses the URL's parts and wraps the headers
at once: about 9 µs of an event's CPU, for a path that reads only the WSGI environ (the
body, the Authorization and forwarded headers), the method, the path, and the query's
arguments of a dry run (`?validate=1`), which are parsed by werkzeug when asked for.
"""

from __future__ import annotations

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request


class BackendRequest:
    """A backend's request: its environ, method and path; its query's arguments on demand."""

    __slots__ = ("environ", "method", "path", "_args")

    def __init__(self, environ: dict) -> None:
        """Read the method and path as werkzeug does for a path the dispatcher matched
        exactly (PATH_INFO is then one of the API's own paths, plain ASCII)."""
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO", "")
        self._args: MultiDict[str, str] | None = None

    @property
    def args(self) -> MultiDict[str, str]:
        """The query string's arguments, as werkzeug's Request parses them."""
        if self._args is None:
            self._args = Request(self.environ).args
        return self._args
