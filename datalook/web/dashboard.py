"""The dashboard of one site: reports over a date range, stats.json, CSV, report settings."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlalchemy import select

from ..accounts.access import owned_site_or_404
from ..analytics import ranges
from ..analytics.money import display
from ..analytics.parameters import ParameterError
from ..analytics.reports import serialise as export
from ..analytics.reports import service as reports
from ..analytics.reports.model import Stats
from ..analytics.rollups.models import RuleDisplay
from ..envelope import parameter_error
from ..extensions import db
from ..models import Site, SuccessRule
from . import chart
from .forms.reports import METRICS, ReportSettingsForm, RuleDisplayForm
from .quest_state import quests_for

bp = Blueprint("dashboard", __name__, url_prefix="/sites/<int:site_id>")


def _range(site: Site) -> ranges.DateRange:
    """The range asked for in the URL, as every report reads it (ParameterError when malformed)."""
    return ranges.site_range(site, request.args)


def _caught_up_site(site_id: int) -> Site:
    """The owned site, after folding the events stored since the last fold."""
    owned_site_or_404(site_id)
    reports.catch_up()
    return owned_site_or_404(site_id)


def _change(current: int | float, previous: int | float) -> str | None:
    """The change from the previous period as "+12%" / "−5%" (None without a base)."""
    if not previous:
        return None
    percent = (current - previous) * 100 / previous
    sign = "+" if percent >= 0 else "−"
    return f"{sign}{abs(percent):.0f}%"


def _metric_values(stats: Stats, metric: str) -> list[float]:
    """The chart's values of one metric (revenue in currency units)."""
    if metric == "revenue":
        return [p.revenue_micros / 1_000_000 for p in stats.series]
    return [getattr(p, metric) for p in stats.series]


@bp.route("/")
@login_required
def overview(site_id: int):
    """Show the site's reports for the range in the URL."""
    site = _caught_up_site(site_id)
    try:
        rng = _range(site)
    except ParameterError as exc:
        flash(f"{exc.field}: {exc.message}. Showing the last 30 days.", "error")
        return redirect(url_for("dashboard.overview", site_id=site.id))
    metric = request.args.get("metric", "events")
    if metric not in METRICS:
        metric = "events"
    stats = reports.stats(site, rng)
    cur = site.currency
    money = lambda micros: display(micros, cur)  # noqa: E731 - a template helper
    values = _metric_values(stats, metric)
    if metric == "revenue":
        texts = [money(p.revenue_micros) for p in stats.series]
        axis = lambda v: display(round(v * 1_000_000), cur)  # noqa: E731
    else:
        texts = [f"{v:,}" for v in values]
        axis = lambda v: f"{v:,.0f}"  # noqa: E731
    picture = chart.build([p.label for p in stats.series], values, texts, axis)
    key = request.args.get("key", "").strip()[:128]
    keys = reports.property_keys(site)
    if not key and keys:
        key = keys[0]
    rows = reports.breakdown(site, rng, key) if key else []
    show_archived = request.args.get("archived") == "1"
    return render_template(
        "dashboard/overview.html",
        site=site,
        quests=quests_for(site),
        stats=stats,
        rng=rng,
        periods=ranges.PERIODS,
        metric=metric,
        metrics=METRICS,
        chart=picture,
        short_label=chart.short_label,
        money=money,
        change=_change,
        breakdown_key=key,
        breakdown_keys=keys,
        breakdown=rows,
        rules=[r for r in stats.rules if show_archived or not r.archived],
        archived_count=sum(1 for r in stats.rules if r.archived),
        show_archived=show_archived,
        events=reports.recent_events(site.id),
        range_args=rng.query_args(),
        exact_limit=reports.exact_limit(),
    )


@bp.route("/stats.json")
@login_required
def stats_json(site_id: int):
    """The reports as JSON (the documented contract); 400 names a bad parameter."""
    site = _caught_up_site(site_id)
    try:
        rng = _range(site)
    except ParameterError as exc:
        raise parameter_error(exc.field, exc.code, exc.message) from exc
    return export.stats_json(site, reports.stats(site, rng))


@login_required
def report_csv(site_id: int, report: str):
    """One report as a CSV download, for the range in the URL."""
    site = _caught_up_site(site_id)
    try:
        rng = _range(site)
    except ParameterError as exc:
        abort(400, description=f"{exc.field}: {exc.message}")
    stats = reports.stats(site, rng)
    key = request.args.get("key", "").strip()[:128]
    rows = reports.breakdown(site, rng, key) if report == "breakdown" and key else None
    text = export.csv_text(report, site, stats, rows)
    name = f"{site.domain}-{report}-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# One fixed URL per report (the report is a default, not a URL part to be guessed).
for _name in export.REPORTS:
    bp.add_url_rule(f"/reports/{_name}.csv", "report_csv", report_csv, defaults={"report": _name})


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings(site_id: int):
    """Change the site's report time zone and currency (events are never rewritten)."""
    site = owned_site_or_404(site_id)
    form = ReportSettingsForm(obj=site)
    if form.validate_on_submit():
        site.timezone = form.timezone.data
        site.currency = form.currency.data
        db.session.commit()
        flash("Report settings saved.", "success")
        return redirect(url_for("dashboard.overview", site_id=site.id))
    status = 400 if form.errors else 200
    return render_template(
        "dashboard/settings.html", site=site, form=form, zones=sorted(ranges.zone_names())
    ), status


@bp.route("/rules/edit", methods=["GET", "POST"])
@login_required
def rule_display(site_id: int):
    """Rename a success rule for display, or archive it; its events are untouched."""
    site = owned_site_or_404(site_id)
    name = request.values.get("name", "")
    if _rule_id(site.id, name) is None:
        abort(404)
    shown = db.session.get(RuleDisplay, (site.id, name))
    form = RuleDisplayForm(obj=shown)
    if form.validate_on_submit():
        if shown is None:
            shown = RuleDisplay(site_id=site.id, name=name)
            db.session.add(shown)
        shown.label = form.label.data or None
        shown.archived = bool(form.archived.data)
        db.session.commit()
        flash(f"Success rule {name} saved.", "success")
        return redirect(url_for("dashboard.overview", site_id=site.id))
    status = 400 if form.errors else 200
    return render_template("dashboard/rule.html", site=site, form=form, name=name), status


def _rule_id(site_id: int, name: str) -> int | None:
    """The id of a site's success rule by name, or None."""
    return db.session.scalar(
        select(SuccessRule.id).where(SuccessRule.site_id == site_id, SuccessRule.name == name)
    )
