"""Funnels and journeys of one site: the builder, saved funnels, the reports and their JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from ..accounts import audit
from ..accounts.access import site_for
from ..analytics import freshness, journeys, kinds
from ..analytics.backlog import notice
from ..analytics.funnels import repository, saved
from ..analytics.funnels.breakdown import DIMENSIONS as BREAKDOWNS
from ..analytics.funnels.definition import (
    DEFAULT_WINDOW,
    MAX_STEPS,
    MIN_STEPS,
    FunnelDefinition,
    definition_from_json,
    parse_definition,
)
from ..analytics.funnels.filtered import broken_down_answer, filtered_answer
from ..analytics.funnels.models import Funnel
from ..analytics.funnels.report import FunnelReport
from ..analytics.funnels.repository import DuplicateName, FunnelGone
from ..analytics.parameters import ParameterError
from ..analytics.query import ReportQuery, parse
from ..analytics.ranges import PERIODS, DateRange, site_range
from ..analytics.reports import service as reports
from ..analytics.reports.visit_filter import kept_sessions
from ..extensions import db
from ..models import Site
from .forms.accounts import EmptyForm
from .forms.funnel_builder import KINDS, FunnelForm, steps_from_form
from .funnel_people import may_see_people
from .quest_funnel import common_paths, funnel_quest_done, rule_names, suggested_steps

bp = Blueprint("funnels", __name__, url_prefix="/sites/<int:site_id>")


def _range(site: Site, args: Mapping[str, str]) -> DateRange:
    """The report's date range, as every report reads it (ParameterError for bad input)."""
    return site_range(site, args)


def _definition_from_args(args: MultiDict) -> FunnelDefinition:
    """Steps (each a JSON object), window and mode from query parameters."""
    return parse_definition(args.getlist("step"), args.get("window"), args.get("mode"))


def _owned_funnel(site: Site, funnel_id: int) -> Funnel:
    """A saved funnel of an owned site, or 404."""
    funnel = repository.site_funnel(db.session(), site.id, funnel_id)
    if funnel is None:
        abort(404)
    return funnel


# ----------------------------------------------------------------------------- pages


def _page_range(site: Site) -> DateRange:
    """The date range of a page; a bad one raises ParameterError, which every page answers
    alike (errors.py: a banner, and the page again without the bad parameter)."""
    return _range(site, request.args)


def _page_query(site: Site, report: str) -> ReportQuery:
    """A page's report parameters (range, filters…); a bad one raises ParameterError, which
    every page answers alike (errors.py: a banner, and the page without the bad parameter)."""
    return parse(site, request.args, report)


@bp.route("/funnels/")
@login_required
def index(site_id: int):
    """The site's saved funnels."""
    site = site_for(site_id, "read")
    listed = repository.site_funnels(db.session(), site.id)
    # Each conversion is one read of a funnel's derived rows: the first LISTED_CONVERSIONS
    # funnels show theirs, any further ones link their report.
    rows = [
        _list_row(site, funnel, with_conversion=n < LISTED_CONVERSIONS)
        for n, funnel in enumerate(listed)
    ]
    return render_template(
        "funnels/index.html",
        site=site,
        rows=rows,
        delete_form=EmptyForm(),
    )


# The range each funnel's report was last viewed with, kept in the signed session cookie
# for the list (a few funnels' worth: the newest first).
_LAST_RANGES = "funnel_ranges"
_LAST_RANGES_KEPT = 20


def _remember_range(funnel_id: int, rng: DateRange) -> None:
    """Remember the range of a funnel's report for the funnels list."""
    kept = dict(session.get(_LAST_RANGES) or {})
    kept.pop(str(funnel_id), None)
    kept = {str(funnel_id): rng.query_args(), **kept}
    session[_LAST_RANGES] = dict(list(kept.items())[:_LAST_RANGES_KEPT])


LISTED_CONVERSIONS = 50


def _list_row(site: Site, funnel: Funnel, with_conversion: bool = True) -> dict:
    """A row of the funnels list: the funnel, its last range and its conversion over it
    (from its derived rows only: None when they cannot answer, e.g. a strict funnel)."""
    definition = definition_from_json(funnel.definition)
    args = (session.get(_LAST_RANGES) or {}).get(str(funnel.id)) or {}
    try:
        rng = _range(site, args)
    except ParameterError:  # a range that was fine then (a custom one) may not be now
        rng = _range(site, {})
    found = None
    if with_conversion:
        found = saved.derived_conversion(db.session(), funnel, definition, rng)
    note = "being prepared"  # the derivation is behind, or follows another zone for now
    if definition.mode == "strict":
        note = "strict: see the report"
    elif not with_conversion:
        note = "see the report"
    return {
        "funnel": funnel,
        "definition": definition,
        "range": rng,
        "conversion": found,
        "note": note,
    }


def _render_builder(
    site: Site,
    form: FunnelForm,
    steps: list[dict],
    funnel=None,
    error=None,
    status=200,
    problems: dict[int, str] | None = None,
):
    """The builder page (new or edit), with the steps to show and any error."""
    choices = _step_choices(site)
    return render_template(
        "funnels/builder.html",
        site=site,
        form=form,
        steps=steps,
        funnel=funnel,
        error=error,
        problems=problems or {},
        min_steps=MIN_STEPS,
        max_steps=MAX_STEPS,
        kinds=KINDS,
        choices=choices,
    ), status


def _step_choices(site: Site) -> dict[str, list[str]]:
    """The builder's autocomplete: the site's paths, rule and custom event names (the kind
    index) and property keys (the summaries), as the fold process keeps them: the page
    reads only, so opening it writes nothing."""
    choices = kinds.step_choices(db.session(), site.id)
    choices["property_keys"] = reports.property_keys(site)
    return choices


@bp.route("/funnels/new")
@login_required
def new(site_id: int):
    """The funnel builder, empty or started with the site's suggested steps."""
    site = site_for(site_id, "admin")
    form = FunnelForm(window=DEFAULT_WINDOW, mode="ordered")
    if request.args.get("suggested"):
        steps = suggested_steps(db.session(), site.id)
    else:
        steps = [{"event_name": "pageview"}, {"event_name": "pageview"}]
    return _render_builder(site, form, steps)


def _save_from_form(site: Site, funnel: Funnel | None):
    """Validate the posted builder and save, or show it again with the error."""
    form = FunnelForm()
    steps, problems = steps_from_form(request.form)
    shown = steps or [{}, {}]
    if not form.validate_on_submit():
        return _render_builder(site, form, shown, funnel, status=400, problems=problems)
    if problems:
        return _render_builder(site, form, shown, funnel, status=400, problems=problems)
    try:
        definition = parse_definition(steps, form.window.data, form.mode.data)
    except ParameterError as exc:
        return _render_builder(site, form, shown, funnel, error=exc, status=400)
    try:
        name = form.name.data
        stored = repository.save(
            db.session(),
            site.id,
            name,
            definition,
            funnel,
            also=lambda session: audit.record(
                site, current_user, "funnel_saved", name, session=session
            ),
        )
    except FunnelGone:  # deleted meanwhile
        abort(404)
    except DuplicateName:
        form.name.errors = [
            f"This site has a funnel named “{form.name.data}” already: choose another name."
        ]
        return _render_builder(site, form, shown, funnel, status=400)
    flash(f"Funnel “{stored.name}” saved.", "success")
    return redirect(url_for("funnels.report", site_id=site.id, funnel_id=stored.id))


@bp.route("/funnels/", methods=["POST"])
@login_required
def create(site_id: int):
    """Save a new funnel."""
    return _save_from_form(site_for(site_id, "admin"), None)


@bp.route("/funnels/<int:funnel_id>/edit")
@login_required
def edit(site_id: int, funnel_id: int):
    """The builder on a saved funnel."""
    site = site_for(site_id, "admin")
    funnel = _owned_funnel(site, funnel_id)
    data = json.loads(funnel.definition)
    form = FunnelForm(name=funnel.name, window=data["window"], mode=data["mode"])
    return _render_builder(site, form, data["steps"], funnel)


@bp.route("/funnels/<int:funnel_id>/edit", methods=["POST"])
@login_required
def update(site_id: int, funnel_id: int):
    """Save changes to a funnel."""
    site = site_for(site_id, "admin")
    return _save_from_form(site, _owned_funnel(site, funnel_id))


@bp.route("/funnels/<int:funnel_id>/delete", methods=["POST"])
@login_required
def delete(site_id: int, funnel_id: int):
    """Delete a saved funnel."""
    site = site_for(site_id, "admin")
    funnel = _owned_funnel(site, funnel_id)
    if not EmptyForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    name = funnel.name
    repository.delete_funnel(
        db.session(),
        funnel,
        also=lambda session: audit.record(
            site, current_user, "funnel_deleted", name, session=session
        ),
    )
    flash(f"Funnel “{name}” deleted.", "success")
    return redirect(url_for("funnels.index", site_id=site.id))


def _bars(report) -> list[dict]:
    """Bar geometry of the SVG chart: one bar per step, width relative to step 1."""
    first = report.steps[0].visitors if report.steps else 0
    bars = []
    for i, step in enumerate(report.steps):
        share = step.visitors / first if first else 0.0
        bars.append({"y": i * 44, "width": round(share * 600, 1), "step": step, "share": share})
    return bars


@bp.route("/funnels/<int:funnel_id>")
@login_required
def report(site_id: int, funnel_id: int):
    """A saved funnel's report: SVG bars and a table."""
    site = site_for(site_id, "read")
    funnel = _owned_funnel(site, funnel_id)
    query = _page_query(site, "saved_funnel")
    rng = query.range
    definition = definition_from_json(funnel.definition)
    by_value: list[tuple[str, FunnelReport]] = []
    if query.funnel_breakdown:
        answer, by_value = broken_down_answer(
            db.session(), site.id, definition, rng, query.filters, query.funnel_breakdown
        )
    elif query.filters:
        answer = filtered_answer(db.session(), site.id, definition, rng, query.filters)
    else:
        answer = saved.saved_answer(
            db.session(), funnel, definition, rng, freshness.report_deadline()
        )
    result = answer.report
    _remember_range(funnel.id, rng)
    return render_template(
        "funnels/report.html",
        site=site,
        funnel=funnel,
        definition=definition,
        report=result,
        freshness_notice=notice(answer.freshness, rng.tz),
        preparing=saved.preparing(db.session(), funnel, definition),
        bars=_bars(result),
        rng=rng,
        filters=[str(f) for f in query.filters],
        breakdown=query.funnel_breakdown,
        breakdowns=BREAKDOWNS,
        by_value=by_value,
        periods=PERIODS,
        delete_form=EmptyForm(),
        duration=format_duration,
        drop_text=drop_text,
        # Who the visitors are (ids may be user ids) only for those who manage the site.
        see_people=may_see_people(site.id),
    )


def drop_text(before: int, after: int) -> str:
    """The drop-off between two bars: "−44%" (a true minus), "0%", or "—" when no one
    reached the step before."""
    if not before:
        return "—"
    share = round(100 * (before - after) / before)
    return f"−{share}%" if share else "0%"


def format_duration(seconds: float) -> str:
    """A median time for people: "45 s", "12 min", "3.5 h", "2.0 d"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@bp.route("/journeys/")
@login_required
def journeys_page(site_id: int):
    """The journeys report and the next-step view."""
    site = site_for(site_id, "read")
    asked = _page_query(site, "journeys")
    rng, query = asked.range, asked.journey_query
    current = freshness.catch_up_sessions(db.session(), freshness.report_deadline())
    kept = kept_sessions(asked)
    top = journeys.top_journeys(db.session(), site.id, rng, query, kept)
    path = request.args.get("path") or ""
    following = None
    if path.startswith("/"):
        following = journeys.next_steps(db.session(), site.id, rng, path, query, kept)
    return render_template(
        "journeys/index.html",
        site=site,
        rng=rng,
        periods=PERIODS,
        query=query,
        filters=[str(f) for f in asked.filters],
        top=top,
        path=path,
        following=following,
        freshness_notice=notice(current, rng.tz),
    )


@bp.route("/quests/funnel")
@login_required
def quest(site_id: int):
    """The "Build your first funnel" quest: steps suggested from the site's own data."""
    site = site_for(site_id, "read")
    return render_template(
        "funnels/quest.html",
        site=site,
        done=funnel_quest_done(db.session(), site.id),
        paths=common_paths(db.session(), site.id),
        rules=rule_names(db.session(), site.id),
        steps=suggested_steps(db.session(), site.id),
    )
