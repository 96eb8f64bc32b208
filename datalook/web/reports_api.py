"""Every report as JSON or CSV: one route each, one parser of their parameters, one handler
of a bad parameter.

A request goes: who asks (a logged-in user, or a read key: read_auth.py) → the site the
principal may read (accounts.access) → its parameters
(analytics.query.parse, which raises ParameterError) → the report → JSON or CSV. A bad
parameter answers the JSON envelope naming it (a 400 page for a CSV download).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.exceptions import BadRequest

from .. import live
from ..accounts.access import current_principal, granted, site_or_404
from ..analytics import backlog, freshness, journeys, money
from ..analytics.backlog import Freshness
from ..analytics.funnels import repository, saved, unsaved
from ..analytics.funnels.breakdown import broken_down_json
from ..analytics.funnels.definition import FunnelDefinition, definition_from_json
from ..analytics.funnels.filtered import broken_down_answer, filtered_answer
from ..analytics.funnels.models import Funnel
from ..analytics.parameters import ParameterError
from ..analytics.query import ReportQuery, parse
from ..analytics.reports import attribution, filtered, serialise
from ..analytics.reports import service as reports
from ..analytics.reports.dimension_rows import dimension_rows
from ..analytics.reports.visit_filter import kept_sessions
from ..browser.bot_counts import bot_counter_for
from ..envelope import json_response, parameter_error
from ..extensions import db
from ..ingest.refusals import recorder_for
from ..models import Site
from .read_auth import read_key_or_session

bp = Blueprint("reports_api", __name__, url_prefix="/sites/<int:site_id>")


@bp.errorhandler(ParameterError)
def bad_parameter(exc: ParameterError):
    """A bad report parameter: the JSON envelope naming it, or a 400 page for a download."""
    if request.path.endswith(".json"):
        return current_app.handle_http_exception(parameter_error(exc.field, exc.code, exc.message))
    return current_app.handle_http_exception(BadRequest(f"{exc.field}: {exc.message}"))


def _site(site_id: int) -> Site:
    """The site whose reports the principal of this request may read, or 404."""
    return site_or_404(current_principal(), site_id, "read")


def _caught_up_site(site_id: int) -> tuple[Site, Freshness]:
    """The readable site, after folding the events stored since the last fold (within the
    report's budget), and how current the summaries now are."""
    _site(site_id)
    current = freshness.catch_up_stats(freshness.report_deadline())
    return _site(site_id), current


@bp.route("/stats.json")
@read_key_or_session
def stats_json(site_id: int):
    """The reports as JSON (the documented contract)."""
    site, current = _caught_up_site(site_id)
    query = parse(site, request.args, "stats")
    if query.filters:  # counted from the events themselves: as current as they are
        current = backlog.from_events(db.session)
    return serialise.stats_json(site, _stats(site, query), current)


def _stats(site: Site, query: ReportQuery):
    """The stats of a query: from the rollups, or with filters from the matching events."""
    if query.filters:
        return filtered.stats(site, query.range, query.filters)
    return reports.stats(site, query.range)


@bp.route("/breakdown.json")
@read_key_or_session
def breakdown_json(site_id: int):
    """One dimension's values over a range, counted from its events (after any filters)."""
    site = _site(site_id)
    query = parse(site, request.args, "breakdown")
    dimension = query.dimension or ""  # the "dimension" group requires one
    report = dimension_rows(site, query.range, dimension, query.filters, query.limit, query.offset)
    answer = serialise.breakdown_json(site, report)
    return json_response({**answer, "freshness": backlog.from_events(db.session).as_json()})


@bp.route("/attribution.json")
@read_key_or_session
def attribution_json(site_id: int):
    """Conversions and revenue of a success rule credited to the visits that led to them."""
    site = _site(site_id)
    query = parse(site, request.args, "attribution")
    freshness.apply_links(db.session())  # the links made a moment ago join their visits
    report = attribution.attribution(
        site.id,
        query.range,
        query.rule,
        query.model,
        query.dimension or "source",
        query.lookback,
        query.filters,
        money.minor_unit(site.currency),
    )
    answer = serialise.attribution_json(site, report)
    return json_response({**answer, "freshness": backlog.from_events(db.session).as_json()})


@read_key_or_session
def report_csv(site_id: int, report: str):
    """One report as a CSV download, for the range in the URL."""
    site, _ = _caught_up_site(site_id)
    query = parse(site, request.args, "csv")
    stats = _stats(site, query)
    rows = None
    if report == "breakdown" and query.filters:
        rows = filtered.property_rows(site, query.range, query.key, query.filters)
    elif report == "breakdown":
        rows = reports.breakdown(site, query.range, query.key)
    text = serialise.csv_text(report, site, stats, rows if query.key else None)
    rng = query.range
    name = f"{site.domain}-{report}-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# One fixed URL per report (the report is a default, not a URL part to be guessed).
for _name in serialise.REPORTS:
    bp.add_url_rule(f"/reports/{_name}.csv", "report_csv", report_csv, defaults={"report": _name})


def _site_funnel(site: Site, funnel_id: int) -> Funnel:
    """A saved funnel of a readable site, or 404."""
    funnel = repository.site_funnel(db.session(), site.id, funnel_id)
    if funnel is None:
        abort(404)
    return funnel


def _broken_down(
    site: Site, definition: FunnelDefinition, query: ReportQuery, dimension: str
) -> dict:
    """A funnel's answer with its breakdown by the step-1 visit's channel or source."""
    answer, per_value = broken_down_answer(
        db.session(), site.id, definition, query.range, query.filters, dimension
    )
    return broken_down_json(answer, per_value, dimension, site.currency)


@bp.route("/funnel.json")
@read_key_or_session
def funnel_json(site_id: int):
    """An unsaved funnel over a date range."""
    site = _site(site_id)
    query = parse(site, request.args, "funnel")
    if query.funnel_breakdown:
        return json_response(_broken_down(site, query.steps, query, query.funnel_breakdown))
    if query.filters:
        answer = filtered_answer(db.session(), site.id, query.steps, query.range, query.filters)
        return json_response(answer.as_json(site.currency))
    deadline = freshness.report_deadline()
    answer = unsaved.unsaved_answer(db.session(), site.id, query.steps, query.range, deadline)
    return json_response(answer.as_json(site.currency))


@bp.route("/funnels/<int:funnel_id>.json")
@read_key_or_session
def saved_funnel_json(site_id: int, funnel_id: int):
    """A saved funnel over a date range."""
    site = _site(site_id)
    funnel = _site_funnel(site, funnel_id)
    query = parse(site, request.args, "saved_funnel")
    definition = definition_from_json(funnel.definition)
    if query.funnel_breakdown:
        return json_response(_broken_down(site, definition, query, query.funnel_breakdown))
    if query.filters:
        answer = filtered_answer(db.session(), site.id, definition, query.range, query.filters)
        return json_response(answer.as_json(site.currency))
    deadline = freshness.report_deadline()
    answer = saved.saved_answer(db.session(), funnel, definition, query.range, deadline)
    return json_response(answer.as_json(site.currency))


@bp.route("/journeys.json")
@read_key_or_session
def journeys_json(site_id: int):
    """The top journeys of a date range."""
    site = _site(site_id)
    query = parse(site, request.args, "journeys")
    current = freshness.catch_up_sessions(db.session(), freshness.report_deadline())
    kept = kept_sessions(query)
    answer = journeys.top_journeys(db.session(), site.id, query.range, query.journey_query, kept)
    return json_response({**answer, "freshness": current.as_json()})


@bp.route("/journeys/next.json")
@read_key_or_session
def next_steps_json(site_id: int):
    """Where visitors go next from one path."""
    site = _site(site_id)
    query = parse(site, request.args, "next_steps")
    current = freshness.catch_up_sessions(db.session(), freshness.report_deadline())
    answer = journeys.next_steps(
        db.session(),
        site.id,
        query.range,
        query.start_path,
        query.journey_query,
        kept_sessions(query),
    )
    return json_response({**answer, "freshness": current.as_json()})


@bp.route("/live.json")
@read_key_or_session
def live_json(site_id: int):
    """Events and refused requests after a cursor, newest first (polled by live.js)."""
    site = _site(site_id)
    after = live.parse_cursor(request.args.get("after"))
    filters = live.parse_filters(request.args)
    # What this process has recorded but not yet written, so the view is current.
    recorder_for(current_app.extensions).flush(db.engine)
    bot_counter_for(current_app.extensions).flush(db.engine)
    response = json_response(live.feed(site, after, filters, granted("live_bodies")))
    response.headers["Cache-Control"] = "no-store"
    return response
