"""GET /js/datalook.js, the browser tracker script (POST /collect is the ingestion app's)."""

from __future__ import annotations

from flask import Blueprint, Response, request
from werkzeug.wrappers import Response as BaseResponse

from ..browser.script import script

bp = Blueprint("tracker", __name__)

# A versioned URL never changes content; the bare one may, so it is cached briefly.
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


@bp.route("/js/datalook.js")
def tracker_script() -> BaseResponse:
    """The tracker script: cached for a year under its versioned URL."""
    content, version = script()
    response = Response(content, mimetype="text/javascript")
    response.headers["Cache-Control"] = IMMUTABLE if request.args.get("v") == version else SHORT
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.set_etag(version)
    return response.make_conditional(request)
