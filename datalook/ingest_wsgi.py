"""The ingestion API's own WSGI entry: POST /event and POST /events without page machinery.

Flask's per-request work is built for pages: a request context, URL matching, a session,
CSRF, Flask-Login and flask-limiter hooks, security headers for HTML, teardown. Ingestion
uses none of it (no cookies, no session, no CSRF, no CORS: see events_api), yet in the
profile it cost about a third of an event's time in the app. So these two POSTs are
answered here by the same handlers the blueprint's routes call, without even an app context:
the engine and the helpers are resolved once per app (events_api.Ingestion). Every other
request, including other methods on these paths (405 with Allow), goes to Flask unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from flask import Flask, Request, Response

from .blueprints.events_api import (
    Ingestion,
    NoContent,
    handle_batch,
    handle_event,
    ingestion_for,
)
from .errors import error_response

log = logging.getLogger(__name__)

Handler = Callable[[Ingestion, Request], Response | NoContent]
NOSNIFF = ("X-Content-Type-Options", "nosniff")
ROUTES: dict[str, Handler] = {"/event": handle_event, "/events": handle_batch}


class IngestionEndpoints:
    """WSGI middleware in front of ``app.wsgi_app`` that answers the ingestion POSTs."""

    def __init__(self, app: Flask, wrapped: Callable) -> None:
        """Serve ROUTES for ``app``; pass everything else on to ``wrapped``."""
        self.app = app
        self.wrapped = wrapped

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Answer a POST to an ingestion path here; hand anything else to Flask."""
        handler = (
            ROUTES.get(environ.get("PATH_INFO", ""))
            if environ["REQUEST_METHOD"] == "POST"
            else None
        )
        if handler is None:
            return self.wrapped(environ, start_response)
        request = self.app.request_class(environ)
        try:
            response = handler(ingestion_for(self.app), request)
        except Exception:
            # What Flask's 500 handler does for pages: log it, answer the envelope.
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error_response(500, "internal_error", "Internal Server Error")
        return _send(response, environ, start_response)


def _send(
    response: Response | NoContent, environ: dict, start_response: Callable
) -> Iterable[bytes]:
    """Start the answer straight from the response's status and headers (plus nosniff).

    What werkzeug's full response call adds is already true of the ingestion answers: no
    redirects to make absolute, a 204 without a body, and other bodies as one byte string
    whose Content-Length set_data has set. Anything else takes werkzeug's path.
    """
    if isinstance(response, NoContent):
        start_response(response.status, [*response.headers, NOSNIFF])
        return []
    response.headers.add(*NOSNIFF)
    body = response.response
    if isinstance(body, list) and "Content-Length" in response.headers:
        start_response(response.status, response.headers.to_wsgi_list())
        return body
    return response(environ, start_response)


def install(app: Flask) -> None:
    """Put the ingestion entry in front of the app's WSGI callable."""
    app.wsgi_app = IngestionEndpoints(app, app.wsgi_app)
