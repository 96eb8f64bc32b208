"""The ingestion API (POST /event, /events, /collect) as its own small WSGI app, beside the
Flask pages app.

Flask's per-request work is built for pages: a request context, URL matching, a session,
CSRF, Flask-Login and flask-limiter hooks, security headers for HTML, teardown. Ingestion
uses none of it, yet in the profile it cost about a third of an event's time. So create_app
puts this app beside Flask, and one dispatcher sends the API's paths (PATHS, written here
once) here and everything else to Flask. It answers its own 404 and 405, always in the JSON
envelope, always with nosniff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from ..envelope import PlainAnswer, error_response
from ..sql.connections import set_write_deadline
from . import collect, pipeline, request_start
from .backend_request import BackendRequest

log = logging.getLogger(__name__)

# An endpoint takes a werkzeug Request (/collect) or, on the backends' paths, a
# BackendRequest (pipeline.ApiRequest).
Endpoint = Callable[[pipeline.Context, Any], pipeline.Answer]


def _authenticated(step: pipeline.Step) -> Endpoint:
    """An endpoint for backends: the Bearer path of pipeline.handle, then `step`."""
    return lambda context, request: pipeline.handle(context, request, step)


# The API's paths, each with its endpoint and the methods it answers itself.
ROUTES: dict[str, tuple[Endpoint, frozenset[str]]] = {
    "/event": (_authenticated(pipeline.one_event), frozenset({"POST"})),
    "/events": (_authenticated(pipeline.batch), frozenset({"POST"})),
    # Browsers: the endpoint answers the CORS preflight (OPTIONS) itself.
    "/collect": (collect.answer, frozenset({"POST", "OPTIONS"})),
}
PATHS = frozenset(ROUTES)
# The backends' paths: they need the client's address only to refuse a failing token, so
# they skip the proxy middleware (ProxyFix parses every X-Forwarded-* header of every
# request) and ask pipeline.client_address when they refuse one.
BACKEND_PATHS = frozenset({"/event", "/events"})
# Paths below the API's (/event/x) belong to the API too: it answers them its own 404.
_BELOW = tuple(f"{path}/" for path in PATHS)
NOSNIFF = ("X-Content-Type-Options", "nosniff")


class IngestionApp:
    """WSGI app for POST /event and POST /events, with its context resolved on first use."""

    def __init__(self, resolve_context: Callable[[], pipeline.Context]) -> None:
        """`resolve_context` builds the engine, limits and counters once per process."""
        self._resolve = resolve_context
        self._context: pipeline.Context | None = None

    @property
    def context(self) -> pipeline.Context:
        """The resolved context (built on the first request, after any fork)."""
        if self._context is None:
            self._context = self._resolve()
        return self._context

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Answer one request to an API path."""
        request: Request | BackendRequest
        if environ.get("PATH_INFO") in BACKEND_PATHS:
            request = BackendRequest(environ)
        else:
            request = Request(environ)
        try:
            budget = self.context.front_budget
            if budget is None:
                answer = self._answer(request)
            else:
                # The busy budget counts from the front's receipt of the whole request.
                set_write_deadline(
                    request_start.deadline(environ, budget, time.time(), time.monotonic())
                )
                try:
                    answer = self._answer(request)
                finally:
                    set_write_deadline(None)
        except Exception:
            # Nothing a client sends may reach here; if a bug does, log it and answer the
            # envelope (never a traceback).
            log.exception("unhandled error on %s %s", request.method, request.path)
            answer = error_response(500, "internal_error", "Internal Server Error")
        return _send(answer, environ, start_response)

    def _answer(self, request: Request | BackendRequest) -> pipeline.Answer:
        """Route by path and method: the step, or the API's own 404/405."""
        route = ROUTES.get(request.path)
        if route is None:
            return error_response(404, "not_found", "No such API endpoint.")
        endpoint, methods = route
        if request.method not in methods:
            allow = {"Allow": "POST, OPTIONS"}
            if request.method == "OPTIONS":
                return Response(status=204, headers=allow)
            return error_response(
                405, "method_not_allowed", "This endpoint takes POST only.", headers=allow
            )
        return endpoint(self.context, request)


def _send(answer: pipeline.Answer, environ: dict, start_response: Callable) -> Iterable[bytes]:
    """Start the answer straight from its status and headers (plus nosniff).

    What werkzeug's full response call adds is already true of the API's answers: no
    redirects to make absolute, a 204 without a body, and other bodies as one byte string
    whose Content-Length set_data has set. Anything else takes werkzeug's path.
    """
    if isinstance(answer, pipeline.NoContent):
        start_response(answer.status, [*answer.headers, NOSNIFF])
        return []
    if isinstance(answer, PlainAnswer):
        start_response(answer.status, [*answer.headers, NOSNIFF])
        return [answer.body]
    answer.headers.add(*NOSNIFF)
    body = answer.response
    if isinstance(body, list) and "Content-Length" in answer.headers:
        start_response(answer.status, answer.headers.to_wsgi_list())
        return body
    return answer(environ, start_response)


class Dispatcher:
    """The one WSGI entry: the API's paths to the ingestion app, the rest to the pages."""

    def __init__(
        self, ingestion: IngestionApp, pages: Callable, proxied: Callable | None = None
    ) -> None:
        """Route between `ingestion` and the Flask app's WSGI callable `pages`; `proxied`
        is the ingestion app behind the proxy middleware, for the API's other paths."""
        self.ingestion = ingestion
        self.pages = pages
        self.proxied = proxied or ingestion

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Send one request to the app that owns its path (the API's paths and below)."""
        path = environ.get("PATH_INFO", "")
        if path in BACKEND_PATHS:
            return self.ingestion(environ, start_response)
        if path in PATHS or path.startswith(_BELOW):
            return self.proxied(environ, start_response)
        return self.pages(environ, start_response)
