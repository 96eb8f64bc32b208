"""POST /collect (browser events) and GET /js/datalook.js (the tracker script).

No session, no cookies, no CSRF: /collect is answered by collect.handler from the request's
parts alone; the routes here only read them.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..collect.handler import MAX_COLLECT_BYTES, collector_for, handle_collect
from ..collect.script import script
from ..extensions import csrf

bp = Blueprint("collect", __name__)
csrf.exempt(bp)

# A versioned URL never changes content; the bare one may, so it is cached briefly.
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


@bp.route("/collect", methods=["POST", "OPTIONS"], provide_automatic_options=False)
def collect() -> Response:
    """Store one browser event (POST) or answer the CORS preflight (OPTIONS)."""
    body = request.stream.read(MAX_COLLECT_BYTES + 1) if request.method == "POST" else b""
    return handle_collect(
        collector_for(current_app._get_current_object()),
        request.method,
        request.query_string.decode("latin-1"),
        request.headers,
        body,
        request.remote_addr,
    )


@bp.route("/js/datalook.js")
def tracker_script() -> Response:
    """The tracker script: cached for a year under its versioned URL."""
    content, version = script()
    response = Response(content, mimetype="text/javascript")
    response.headers["Cache-Control"] = IMMUTABLE if request.args.get("v") == version else SHORT
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.set_etag(version)
    return response.make_conditional(request)
