"""The one JSON error envelope of every machine-facing answer (ingestion API, reports).

Envelope: {"error": {"code": "...", "message": "...", "errors": [{"field", "code", "message"}]}}

Plain werkzeug, no Flask: the ingestion app answers without an app context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response


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
        """Keep the status, the machine-readable code and the per-field errors."""
        super().__init__(description=message)
        self.code = status
        self.error_code = code
        self.errors = errors
        self.extra_headers = headers or {}
        self.extra = extra or {}

    def get_response(self, environ=None, scope=None) -> Response:
        """The JSON error envelope with this error's fields and headers."""
        return error_response(
            self.code or 500,
            self.error_code,
            self.description or "",
            self.errors,
            self.extra_headers,
            self.extra,
        )


def parameter_error(field: str, code: str, message: str) -> ApiError:
    """The 400 of a bad query parameter, the same for every report: code `invalid_request`
    (as the ingestion API answers an invalid event), `errors[0].field` naming the parameter."""
    return ApiError(
        400, "invalid_request", message, [{"field": field, "code": code, "message": message}]
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
    """A JSON answer that needs no app context."""
    return Response(_json_bytes(payload), status=status, mimetype="application/json")


def _json_bytes(payload: object) -> bytes:
    """The JSON text of an answer's body."""
    try:
        return orjson.dumps(payload)
    except TypeError:  # integers beyond 64 bits, which orjson refuses
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class PlainAnswer:
    """An envelope answer as its status line, (name, value) header pairs and body bytes.

    For the refusals that a flood repeats (a key over its limit): the ingestion app starts
    it directly, without building a werkzeug Response and its Headers, which cost more than
    the decision itself. What the client receives is the same as error_response's answer.
    """

    status: str
    headers: list[tuple[str, str]]
    body: bytes


def plain_error(status: int, code: str, message: str, extra: dict | None = None) -> PlainAnswer:
    """error_response's answer (same status line, body and headers) as a PlainAnswer."""
    body: dict = {"code": code, "message": message}
    if extra:
        body.update(extra)
    data = _json_bytes({"error": body})
    # The status line and the two headers exactly as werkzeug writes them for a Response.
    return PlainAnswer(
        f"{status} {HTTP_STATUS_CODES[status].upper()}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        data,
    )


# Paths of the pages app that machines call: they always get JSON errors (the ingestion
# API answers its own; see ingest/).
API_PREFIXES = ("/api/", "/openapi.json", "/healthz", "/readyz")


def wants_json(path: str) -> bool:
    """Return whether a request path is an API call (JSON errors) or a page."""
    return path.startswith(API_PREFIXES) or path.endswith(".json")
