"""Funnels and journeys of one site: the builder, saved funnels, the reports and their JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from ..accounts.access import owned_site_or_404
from ..analytics import freshness, journeys
from ..analytics.backlog import notice
from ..analytics.funnels import repository, saved
from ..analytics.funnels.definition import (
    DEFAULT_WINDOW,
    MAX_STEPS,
    MIN_STEPS,
    FunnelDefinition,
    definition_from_json,
    parse_definition,
)
from ..analytics.funnels.models import Funnel
from ..analytics.funnels.repository import FunnelGone
from ..analytics.money import display
from ..analytics.parameters import ParameterError
from ..analytics.ranges import PERIODS, DateRange, site_range
from ..extensions import db
from ..models import Site
from .forms.accounts import EmptyForm
from .forms.funnel_builder import FunnelForm
from .quest_funnel import common_paths, funnel_quest_done, rule_names, suggested_steps

bp = Blueprint("funnels", __name__, url_prefix="/sites/<int:site_id>")


def _range(site: Site, args: Mapping[str, str]) -> DateRange:
    """The report's date range, as every report reads it (ParameterError for bad input)."""
    return site_range(site, args)


def _definition_from_args(args: MultiDict) -> FunnelDefinition:
    """Steps (each a JSON object), window and mode from query parameters."""
    return parse_definition(args.getlist("step"), args.get("window"), args.get("mode"))


def _steps_from_form(form: MultiDict) -> list[dict]:
    """The builder's steps, in page order (each field repeats once per step)."""
    names = form.getlist("event_name")
    paths = form.getlist("page_path")
    rules = form.getlist("rule_name")
    keys = form.getlist("property_key")
    values = form.getlist("property_value")
    steps = []
    for i, event_name in enumerate(names):

        def at(values_list: list[str], index: int = i) -> str | None:
            """The i-th value of a repeated field, None when empty."""
            value = values_list[index].strip() if index < len(values_list) else ""
            return value or None

        key = at(keys)
        steps.append(
            {
                "event_name": event_name,
                "page_path": at(paths),
                "name": at(rules),
                "property": {"key": key, "value": at(values) or ""} if key else None,
            }
        )
    return steps


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


@bp.route("/funnels/")
@login_required
def index(site_id: int):
    """The site's saved funnels."""
    site = owned_site_or_404(site_id)
    listed = repository.site_funnels(db.session(), site.id)
    return render_template("funnels/index.html", site=site, funnels=listed, delete_form=EmptyForm())


def _render_builder(
    site: Site, form: FunnelForm, steps: list[dict], funnel=None, error=None, status=200
):
    """The builder page (new or edit), with the steps to show and any error."""
    return render_template(
        "funnels/builder.html",
        site=site,
        form=form,
        steps=steps,
        funnel=funnel,
        error=error,
        min_steps=MIN_STEPS,
        max_steps=MAX_STEPS,
        event_names=("pageview", "click", "success", "custom"),
    ), status


@bp.route("/funnels/new")
@login_required
def new(site_id: int):
    """The funnel builder, empty or started with the site's suggested steps."""
    site = owned_site_or_404(site_id)
    form = FunnelForm(window=DEFAULT_WINDOW, mode="ordered")
    if request.args.get("suggested"):
        steps = suggested_steps(db.session(), site.id)
    else:
        steps = [{"event_name": "pageview"}, {"event_name": "pageview"}]
    return _render_builder(site, form, steps)


def _save_from_form(site: Site, funnel: Funnel | None):
    """Validate the posted builder and save, or show it again with the error."""
    form = FunnelForm()
    steps = _steps_from_form(request.form)
    if not form.validate_on_submit():
        return _render_builder(site, form, steps or [{}, {}], funnel, status=400)
    try:
        definition = parse_definition(steps, form.window.data, form.mode.data)
    except ParameterError as exc:
        return _render_builder(site, form, steps or [{}, {}], funnel, error=exc, status=400)
    try:
        stored = repository.save(db.session(), site.id, form.name.data, definition, funnel)
    except FunnelGone:  # deleted meanwhile
        abort(404)
    flash(f"Funnel “{stored.name}” saved.", "success")
    return redirect(url_for("funnels.report", site_id=site.id, funnel_id=stored.id))


@bp.route("/funnels/", methods=["POST"])
@login_required
def create(site_id: int):
    """Save a new funnel."""
    return _save_from_form(owned_site_or_404(site_id), None)


@bp.route("/funnels/<int:funnel_id>/edit")
@login_required
def edit(site_id: int, funnel_id: int):
    """The builder on a saved funnel."""
    site = owned_site_or_404(site_id)
    funnel = _owned_funnel(site, funnel_id)
    data = json.loads(funnel.definition)
    form = FunnelForm(name=funnel.name, window=data["window"], mode=data["mode"])
    return _render_builder(site, form, data["steps"], funnel)


@bp.route("/funnels/<int:funnel_id>/edit", methods=["POST"])
@login_required
def update(site_id: int, funnel_id: int):
    """Save changes to a funnel."""
    site = owned_site_or_404(site_id)
    return _save_from_form(site, _owned_funnel(site, funnel_id))


@bp.route("/funnels/<int:funnel_id>/delete", methods=["POST"])
@login_required
def delete(site_id: int, funnel_id: int):
    """Delete a saved funnel."""
    site = owned_site_or_404(site_id)
    funnel = _owned_funnel(site, funnel_id)
    if not EmptyForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    name = funnel.name
    repository.delete_funnel(db.session(), funnel)
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
    site = owned_site_or_404(site_id)
    funnel = _owned_funnel(site, funnel_id)
    rng = _page_range(site)
    definition = definition_from_json(funnel.definition)
    deadline = freshness.report_deadline()
    answer = saved.saved_answer(db.session(), funnel, definition, rng, deadline)
    result = answer.report
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
        periods=PERIODS,
        delete_form=EmptyForm(),
        duration=format_duration,
        # As the dashboard shows money: the site's currency, exact to the cent ("¥1,250").
        money=lambda micros: display(micros, site.currency),
    )


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
    site = owned_site_or_404(site_id)
    rng = _page_range(site)
    query = journeys.parse_query(request.args)  # ParameterError: as a bad range is answered
    current = freshness.catch_up_sessions(db.session(), freshness.report_deadline())
    top = journeys.top_journeys(db.session(), site.id, rng, query)
    path = request.args.get("path") or ""
    following = None
    if path.startswith("/"):
        following = journeys.next_steps(db.session(), site.id, rng, path, query)
    return render_template(
        "journeys/index.html",
        site=site,
        rng=rng,
        periods=PERIODS,
        query=query,
        top=top,
        path=path,
        following=following,
        freshness_notice=notice(current, rng.tz),
    )


@bp.route("/quests/funnel")
@login_required
def quest(site_id: int):
    """The "Build your first funnel" quest: steps suggested from the site's own data."""
    site = owned_site_or_404(site_id)
    return render_template(
        "funnels/quest.html",
        site=site,
        done=funnel_quest_done(db.session(), site.id),
        paths=common_paths(db.session(), site.id),
        rules=rule_names(db.session(), site.id),
        steps=suggested_steps(db.session(), site.id),
    )
