"""The pages app's error handlers: the JSON envelope for machine-facing paths, HTML pages
for people (the envelope itself lives in envelope.py)."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Flask, flash, redirect, render_template, request
from flask_login import current_user
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError
from werkzeug.wrappers import Response

from ..accounts.access import current_principal, site_or_404
from ..analytics.parameters import ParameterError
from ..envelope import ApiError, error_response, parameter_error, wants_json
from ..extensions import db, login_manager
from ..models import Site

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
        "error.html",
        status=status,
        title=exc.name,
        message=exc.description,
        site=_site_for_navigation(),
    ), status


def _site_for_navigation() -> Site | None:
    """The site of the URL when the visitor may read it: an error page inside a site keeps
    the site's navigation (an unknown or someone else's site gets none, and says nothing)."""
    site_id = (request.view_args or {}).get("site_id")
    if not isinstance(site_id, int) or not current_user.is_authenticated:
        return None
    try:
        return site_or_404(current_principal(), site_id, "read")
    except HTTPException:
        return None
    except Exception:  # the database itself may be why this page is shown
        db.session.rollback()
        return None


# A bad one of these falls back to the default range (Last 30 days), as the dashboard does.
_RANGE_PARAMETERS = ("from", "to", "period")


def _handle_parameter_error(exc: ParameterError) -> Response | tuple[str, int]:
    """A bad report parameter of a page: a banner naming it, and the same page without it
    (a bad range: the default range), inside the site's navigation. JSON paths get the
    envelope naming the parameter."""
    if wants_json(request.path):
        return parameter_error(exc.field, exc.code, exc.message).get_response()
    dropped = set(_RANGE_PARAMETERS) if exc.field in _RANGE_PARAMETERS else {exc.field}
    given = list(request.args.items(multi=True))
    kept = [(name, value) for name, value in given if name not in dropped]
    if request.method != "GET" or len(kept) == len(given):
        # Nothing to leave out (the parameter came from elsewhere): a 400 page instead of
        # a redirect that would fail again.
        return _handle_http_exception(BadRequest(f"{exc.field}: {exc.message}"))
    fallback = (
        "Showing the last 30 days."
        if exc.field in _RANGE_PARAMETERS
        else f"Showing the page without {exc.field}."
    )
    flash(f"{exc.field}: {exc.message}. {fallback}", "error")
    return redirect(request.path + (f"?{urlencode(kept)}" if kept else ""))


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
    app.register_error_handler(ParameterError, _handle_parameter_error)
    app.register_error_handler(Exception, _handle_unexpected)
    login_manager.api_answer = _log_in_first
