"""The dashboard of one site: reports over a date range, stats.json, CSV, report settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from ..accounts import audit
from ..accounts.access import current_principal, site_for, site_or_404
from ..analytics import freshness, ranges
from ..analytics.backlog import Freshness, notice
from ..analytics.money import display
from ..analytics.query import ReportQuery, parse
from ..analytics.reports import service as reports
from ..analytics.reports.model import Stats
from ..analytics.rollups.models import RuleDisplay
from ..extensions import db
from ..models import Site, SuccessRule
from . import chart
from .forms.reports import METRICS, ReportSettingsForm, RuleDisplayForm
from .quest_state import quests_for

bp = Blueprint("dashboard", __name__, url_prefix="/sites/<int:site_id>")


def _caught_up_site(site_id: int) -> tuple[Site, Freshness]:
    """The readable site, after folding the events stored since the last fold (within the
    report's budget), and how current the summaries now are."""
    site_or_404(current_principal(), site_id, "read")
    current = freshness.catch_up_stats(freshness.report_deadline())
    return site_or_404(current_principal(), site_id, "read"), current


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
    site, current = _caught_up_site(site_id)
    # A bad range raises ParameterError, which every page answers alike (errors.py).
    query = parse(site, request.args, "page")
    return render_template(
        "dashboard/overview.html",
        **report_context(site, query, current, _overview_url(site)),
        quests=quests_for(site),
        events=reports.recent_events(site.id),
        exact_limit=reports.exact_limit(),
    )


def _overview_url(site: Site) -> Callable[..., str]:
    """The dashboard's own URL with other arguments (the range picker's links)."""
    return lambda **args: url_for("dashboard.overview", site_id=site.id, **args)


def report_context(
    site: Site, query: ReportQuery, current: Freshness, report_url: Callable[..., str]
) -> dict[str, Any]:
    """What dashboard/_reports.html needs to show a readable site's reports over the query's
    range: the dashboard and the shared links' page both render through this one function.
    `report_url(**args)` is the page's own URL with other arguments."""
    rng = query.range
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
    key = query.key
    keys = reports.property_keys(site)
    if not key and keys:
        key = keys[0]
    rows = reports.breakdown(site, rng, key) if key else []
    show_archived = request.args.get("archived") == "1"
    return {
        "site": site,
        "stats": stats,
        "rng": rng,
        "periods": ranges.PERIODS,
        "metric": metric,
        "metrics": METRICS,
        "chart": picture,
        "short_label": chart.short_label,
        "money": money,
        "change": _change,
        "breakdown_key": key,
        "breakdown_keys": keys,
        "breakdown": rows,
        "rules": [r for r in stats.rules if show_archived or not r.archived],
        "archived_count": sum(1 for r in stats.rules if r.archived),
        "show_archived": show_archived,
        "range_args": rng.query_args(),
        "freshness_notice": notice(current, rng.tz),
        "report_url": report_url,
    }


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings(site_id: int):
    """Change the site's report time zone and currency (events are never rewritten)."""
    site = site_for(site_id, "admin")
    form = ReportSettingsForm(obj=site)
    if form.validate_on_submit():
        site.timezone = form.timezone.data
        site.currency = form.currency.data
        audit.record(
            site,
            current_user,
            "settings_changed",
            "report settings",
            timezone=site.timezone,
            currency=site.currency,
        )
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
    site = site_for(site_id, "admin")
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
        audit.record(
            site, current_user, "rule_changed", name, label=shown.label, archived=shown.archived
        )
        db.session.commit()
        flash(f"Success rule {name} saved.", "success")
        return redirect(url_for("dashboard.overview", site_id=site.id))
    status = 400 if form.errors else 200
    # The rule's revenue by source over the range in the URL (the dashboard's default
    # otherwise); a bad range is answered like every page's (errors.py).
    range_args = {**parse(site, request.args, "page").range.query_args(), "rule": name}
    return render_template(
        "dashboard/rule.html", site=site, form=form, name=name, range_args=range_args
    ), status


def _rule_id(site_id: int, name: str) -> int | None:
    """The id of a site's success rule by name, or None."""
    return db.session.scalar(
        select(SuccessRule.id).where(SuccessRule.site_id == site_id, SuccessRule.name == name)
    )
