"""Documentation pages and the OpenAPI description of the public API."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request
from werkzeug.exceptions import NotFound

from .. import live, openapi
from ..accounts.access import current_principal, site_or_404
from ..analytics import journeys, ranges, sessions
from ..analytics.funnels import definition as funnels
from ..analytics.reports import pages as report_pages
from ..browser.script import snippet
from ..ingest import storage
from ..keys import apikeys
from ..snippets import render as snippets
from ..snippets import stats_api
from . import show_once

bp = Blueprint("docs", __name__)


@bp.route("/docs/server-events")
def server_events():
    """The server events guide, with placeholder snippets."""
    return render_template(
        "docs/server_events.html",
        event_url=show_once.event_url(),
        snippets=snippets.render(show_once.event_url(), None),
        **_rule_caps(),
    )


@bp.route("/docs/browser-sdk")
def browser_sdk():
    """The browser SDK guide, with a placeholder snippet."""
    return render_template(
        "docs/browser_sdk.html",
        snippet=snippet(show_once.base_url(), "YOUR_SITE_KEY"),
        collect_url=f"{show_once.base_url()}/collect",
        **_rule_caps(),
    )


def _rule_caps() -> dict[str, int]:
    """The caps of success rule names per site, by who sent them first."""
    return {
        "max_rules": storage.MAX_RULES_PER_SITE,
        "max_browser_rules": storage.MAX_BROWSER_RULES_PER_SITE,
        "max_test_rules": storage.MAX_TEST_RULES_PER_SITE,
    }


@bp.route("/docs/reports")
def reports():
    """How the reports count, and the JSON contracts of stats, funnels, journeys and live."""
    return render_template(
        "docs/reports.html",
        periods=ranges.PERIODS,
        default_period=ranges.DEFAULT_PERIOD,
        errors=openapi.report_parameters.ENDPOINT_ERRORS,
        funnels=funnels,
        journey_steps=(journeys.DEFAULT_STEPS, sessions.KEPT_STEPS, journeys.TOP),
        session_gap_minutes=int(sessions.GAP.total_seconds() // 60),
        live_page=live.PAGE,
        top_pages=report_pages.TOP_PAGES,
        catch_up_budget_ms=current_app.config["REPORT_CATCHUP_BUDGET_MS"],
    )


@bp.route("/docs/stats-api")
def stats_api_page():
    """The Stats API guide: read keys, answers, and examples per endpoint, filled in with
    the reader's site (`?site=<id>`, when they may read it)."""
    site_id = request.args.get("site", type=int)
    if site_id is not None:
        try:
            site_or_404(current_principal(), site_id, "read")
        except NotFound:
            site_id = None  # someone else's site: the placeholder, and nothing said
    return render_template(
        "docs/stats_api.html",
        site_id=site_id,
        read_cap=apikeys.MAX_ACTIVE_READ_KEYS,
        rate_limit=current_app.config["READ_KEY_RATE_LIMIT"],
        examples=stats_api.examples(show_once.base_url(), site_id, None),
    )


@bp.route("/openapi.json")
def openapi_json():
    """The public API in OpenAPI 3.1."""
    config = current_app.config
    return jsonify(
        openapi.document(
            show_once.base_url(), config["COLLECT_ADDRESS_LIMIT"], config["SESSION_COOKIE_NAME"]
        )
    )
