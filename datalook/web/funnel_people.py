"""Who dropped off or converted at a funnel step, and one visitor's journey.

Visitor ids name people (a user id sent as success_user_id), so these pages are for those
who may manage the site (accounts.access, "admin"): never for readers or shared links.
"""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, render_template, request
from flask_login import login_required

from ..accounts.access import current_principal, granted, site_or_404
from ..analytics import freshness
from ..analytics.funnels import people, repository
from ..analytics.funnels.definition import definition_from_json
from ..analytics.funnels.models import Funnel
from ..analytics.parameters import ParameterError
from ..analytics.ranges import DateRange, site_range
from ..analytics.reports.serialise import safe_cell
from ..extensions import db
from ..models import Site
from .timefmt import site_time

bp = Blueprint("funnel_people", __name__, url_prefix="/sites/<int:site_id>")


def may_see_people(site_id: int) -> bool:
    """Whether the principal of this request (its site already checked by site_or_404)
    may see who the visitors are: admins and owners only."""
    return granted("admin")


def _managed_site(site_id: int) -> Site:
    """The site, if the principal may manage it (and so see visitor ids), or 404."""
    return site_or_404(current_principal(), site_id, "admin")


def _range(site: Site) -> DateRange:
    """The date range of the list; a bad one is a 400 naming the parameter."""
    try:
        return site_range(site, request.args)
    except ParameterError as exc:
        abort(400, description=f"{exc.field}: {exc.message}")


def _step_and_outcome(funnel: Funnel, steps: int) -> tuple[int, str]:
    """`step` (1..steps; 2.. for drop-offs) and `outcome` from the query, or a 400."""
    outcome = request.args.get("outcome", "converted")
    if outcome not in people.OUTCOMES:
        abort(400, description="outcome: must be converted or dropped")
    raw = request.args.get("step", "")
    lowest = 2 if outcome == "dropped" else 1
    if not raw.isdigit() or not lowest <= int(raw) <= steps:
        abort(400, description=f"step: must be a step number from {lowest} to {steps}")
    return int(raw), outcome


def _funnel(site: Site, funnel_id: int) -> Funnel:
    """A saved funnel of the site, or 404."""
    funnel = repository.site_funnel(db.session(), site.id, funnel_id)
    if funnel is None:
        abort(404)
    return funnel


@bp.route("/funnels/<int:funnel_id>/visitors")
@login_required
def step_visitors(site_id: int, funnel_id: int):
    """A page of the visitors who converted or dropped off at a step."""
    site = _managed_site(site_id)
    funnel = _funnel(site, funnel_id)
    rng = _range(site)
    definition = definition_from_json(funnel.definition)
    step, outcome = _step_and_outcome(funnel, len(definition.steps))
    raw_page = request.args.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 10_000:
        abort(400, description="page: must be a page number from 1")
    page_number = int(raw_page)
    found = people.step_visitors(
        db.session(),
        funnel,
        definition,
        rng,
        step,
        outcome,
        limit=people.PAGE_SIZE,
        offset=(page_number - 1) * people.PAGE_SIZE,
        deadline=freshness.report_deadline(),
    )
    return render_template(
        "funnels/visitors.html",
        site=site,
        funnel=funnel,
        definition=definition,
        rng=rng,
        step=step,
        outcome=outcome,
        found=found,
        page_number=page_number,
        when=lambda at: site_time(at, site),
    )


@bp.route("/funnels/<int:funnel_id>/visitors.csv")
@login_required
def step_visitors_csv(site_id: int, funnel_id: int):
    """The same list as CSV (at most people.CSV_LIMIT visitors)."""
    site = _managed_site(site_id)
    funnel = _funnel(site, funnel_id)
    rng = _range(site)
    definition = definition_from_json(funnel.definition)
    step, outcome = _step_and_outcome(funnel, len(definition.steps))
    found = people.step_visitors(
        db.session(), funnel, definition, rng, step, outcome, limit=people.CSV_LIMIT
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["visitor_id", "entered_at_utc", "furthest_step"])
    for v in found.visitors:
        writer.writerow([safe_cell(v.visitor_id), v.entered_at.isoformat(), v.furthest])
    name = f"{site.domain}-funnel-{funnel.id}-step-{step}-{outcome}-{rng.first}-{rng.last}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/journeys/visitor")
@login_required
def visitor_journey(site_id: int):
    """One visitor's sessions in the range: their journey, page by page."""
    site = _managed_site(site_id)
    rng = _range(site)
    visitor = request.args.get("visitor", "")
    if not visitor or len(visitor) > 260:
        abort(400, description="visitor: give a visitor id")
    # The sessions of the newest events first, within a report's budget (as the journeys page).
    freshness.catch_up_sessions(db.session(), freshness.report_deadline())
    sessions = people.visitor_journey(db.session(), site.id, visitor, rng)
    return render_template(
        "journeys/visitor.html",
        site=site,
        rng=rng,
        visitor=visitor,
        sessions=sessions,
        when=lambda at: site_time(at, site),
    )
