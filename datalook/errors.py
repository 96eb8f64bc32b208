"""One JSON error envelope for the API, HTML error pages for people.

Envelope: {"error": {"code": "...", "message": "...", "errors": [{"field", "code", "message"}]}}
"""

from __future__ import annotations

import json
import logging

import orjson
from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db

log = logging.getLogger(__name__)

# Paths that machines call: they always get JSON errors.
API_PREFIXES = ("/event", "/collect", "/api/", "/openapi.json", "/healthz", "/readyz")

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


class ApiError(HTTPException):
    """An API failure that carries its envelope fields and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(description=message)
        self.code = status
        self.error_code = code
        self.errors = errors
        self.extra_headers = headers or {}
        self.extra = extra or {}

    def get_response(self, environ=None, scope=None) -> Response:
        """The JSON error envelope with this error's fields and headers."""
        return error_response(
            self.code,
            self.error_code,
            self.description,
            self.errors,
            self.extra_headers,
            self.extra,
        )


def truncate(value: object, limit: int = 40) -> str:
    """Return a short, safe echo of client input for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(
    status: int,
    code: str,
    message: str,
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict | None = None,
) -> Response:
    """Build the JSON error envelope response."""
    body: dict = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    response = json_response({"error": body}, status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def json_response(payload: object, status: int = 200) -> Response:
    """A JSON answer that needs no app context (the ingestion API runs without one)."""
    try:
        data = orjson.dumps(payload)
    except TypeError:  # integers beyond 64 bits, which orjson refuses
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status=status, mimetype="application/json")


def wants_json() -> bool:
    """Return whether the current request is an API call (JSON errors) or a page."""
    return request.path.startswith(API_PREFIXES) or request.path.endswith(".json")


def _handle_http_exception(exc: HTTPException) -> Response | tuple[str, int]:
    """Render any HTTP error as the JSON envelope or an HTML page."""
    status = exc.code or 500
    if isinstance(exc, ApiError):
        return exc.get_response()
    if wants_json():
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


def _handle_unexpected(exc: Exception) -> Response | tuple[str, int]:
    """Roll back, log, and answer 500 without leaking internals."""
    db.session.rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _handle_http_exception(InternalServerError())


def register(app: Flask) -> None:
    """Install the error handlers on the app."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
