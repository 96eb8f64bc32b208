"""The OpenAPI 3.1 description of DataLook's public HTTP API, in one document.

Three parts, each in its module: the server ingestion API and the probes (ingestion), the
browser endpoint (collect), and a site's reports as JSON for its owner (reports: the paths
and answers; report_parameters: the query parameters and their error codes; report_schemas:
the answers' schemas). Each reads its facts (fields, bounds, names, caps) from the code that
enforces them. Every error answer is the one `Error` envelope.
"""

from __future__ import annotations

from . import collect, ingestion, report_parameters, report_schemas, reports
from .error_codes import ERROR_CODES, FIELD_ERROR_CODES, WARNING_CODES

__all__ = ["ERROR_CODES", "FIELD_ERROR_CODES", "WARNING_CODES", "document"]

DEFAULT_COLLECT_LIMIT = "120 per minute"


def document(
    server_url: str,
    collect_limit: str = DEFAULT_COLLECT_LIMIT,
    session_cookie: str = "session",
) -> dict:
    """Return the OpenAPI document for a server: its base URL, its per-address limit of
    POST /collect, and the name of its session cookie."""
    parts = ingestion.components()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DataLook API",
            "version": "1.1.0",
            "summary": "Send events from backends and web pages; read a site's reports.",
            "description": (
                "Server events for backends (`/event`, `/events`): JSON in, JSON errors "
                "out, Bearer-token authentication, no cookies and no CORS (keep the key on "
                "your server). Browser events (`/collect`): a public site key and the "
                "page's origin. Reports as JSON (`/sites/{site_id}/…`, the Stats API): a "
                "read key (`Bearer dl_read_…`) or the dashboard's session. "
                'Every error uses one envelope, `{"error": {"code", "message", '
                '"errors"}}`. Unknown URLs answer 404 `not_found`, another method 405 '
                "`method_not_allowed`. Guides: /docs/server-events, /docs/browser-sdk, "
                "/docs/reports, /docs/stats-api."
            ),
        },
        "servers": [{"url": server_url}],
        "tags": [
            {"name": "Ingestion", "description": "Send events from a backend."},
            {"name": "Browser", "description": "Send events from a web page."},
            {
                "name": "Reports",
                "description": "A site's reports as JSON (the Stats API), for a read key of "
                "the site or its owner's session.",
            },
            {"name": "Operations", "description": "Probes for load balancers and orchestrators."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": {
            **ingestion.paths(),
            **collect.paths(collect_limit),
            **reports.paths(),
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": ingestion.bearer_scheme(),
                "readKey": reports.read_key_scheme(),
                "sessionCookie": reports.session_scheme(session_cookie),
            },
            "schemas": {**parts["schemas"], **report_schemas.schemas()},
            "headers": {**parts["headers"], **collect.headers()},
            "responses": {**parts["responses"], **reports.responses()},
            "parameters": report_parameters.parameters(),
        },
    }
