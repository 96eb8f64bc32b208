"""The pages app's error handlers: the JSON envelope for machine-facing paths, HTML pages
for people (the envelope itself lives in envelope.py)."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from ..envelope import ApiError, error_response, wants_json
from ..extensions import db, login_manager

log = logging.getLogger(__name__)

DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def _handle_http_exception(exc: HTTPException) -> Response | tuple[str, int]:
    """Render any HTTP error as the JSON envelope or an HTML page."""
    status = exc.code or 500
    if isinstance(exc, ApiError):
        return exc.get_response()
    if wants_json(request.path):
        response = error_response(
            status, DEFAULT_CODES.get(status, "error"), exc.description or exc.name
        )
        allow = exc.get_response().headers.get("Allow") if status == 405 else None
        if allow:
            response.headers["Allow"] = allow
        return response
    return render_template(
        "error.html", status=status, title=exc.name, message=exc.description
    ), status


def _log_in_first() -> Response | None:
    """Not logged in on a JSON path: 401 in the envelope (a script cannot follow a redirect
    to an HTML form); None lets pages redirect to the log-in page as before."""
    if not wants_json(request.path):
        return None
    return error_response(
        401,
        "unauthorized",
        "Log in first: this report is for the site's members, with the dashboard's session "
        "cookie (log in at /login).",
    )


def _handle_unexpected(exc: Exception) -> Response | tuple[str, int]:
    """Roll back, log, and answer 500 without leaking internals."""
    db.session.rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _handle_http_exception(InternalServerError())


def register(app: Flask) -> None:
    """Install the error handlers on the app."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
    login_manager.api_answer = _log_in_first
