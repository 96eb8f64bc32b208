"""The dashboard of one site: top figures, the chart and the panels over a date range and
filters, each panel's full list (with CSV), report settings, a success rule's display."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response as BaseResponse

from ..accounts import audit
from ..accounts.access import current_principal, site_for, site_or_404
from ..acquisition.dimensions import FilterError
from ..analytics import backlog, freshness, ranges
from ..analytics.backlog import Freshness, notice
from ..analytics.parameters import ParameterError
from ..analytics.query import MAX_OFFSET, ReportQuery, parse
from ..analytics.reports import filtered, serialise
from ..analytics.reports import service as reports
from ..analytics.reports.bounded import holds_more_than
from ..analytics.reports.comparison import previous_series
from ..analytics.reports.current import current_visitors
from ..analytics.reports.dimension_rows import dimension_rows
from ..analytics.reports.model import SeriesPoint, Stats
from ..analytics.rollups.models import RuleDisplay
from ..extensions import db
from ..models import Site, SuccessRule, utcnow
from . import chart, numbers, panels
from .figures import shown_figures
from .forms.reports import METRICS, ReportSettingsForm, RuleDisplayForm
from .quest_state import quests_for

bp = Blueprint("dashboard", __name__, url_prefix="/sites/<int:site_id>")

#: Rows per page of a dimension's full list ("Details").
DETAILS_ROWS = 50
#: Up to this many events in the range, the panels are read before the page answers.
PANEL_INLINE_EVENTS = 25_000


def _caught_up_site(site_id: int) -> tuple[Site, Freshness]:
    """The readable site, after folding the events stored since the last fold (within the
    report's budget), and how current the summaries now are."""
    site_or_404(current_principal(), site_id, "read")
    current = freshness.catch_up_stats(freshness.report_deadline())
    return site_or_404(current_principal(), site_id, "read"), current


def _chart(site: Site, stats: Stats, previous: list[SeriesPoint], metric: str, now_utc):
    """The chart of one metric, the previous period overlaid."""
    cur = site.currency

    def series(points: list[SeriesPoint]) -> chart.Series:
        if metric == "revenue":
            values = [p.revenue_micros / 1_000_000 for p in points]
            texts = [numbers.money(p.revenue_micros, cur) for p in points]
        else:
            values = [float(getattr(p, metric)) for p in points]
            texts = [numbers.num(getattr(p, metric)) for p in points]
        return chart.Series([p.label for p in points], values, texts)

    def axis(value: float) -> str:
        if metric == "revenue":
            return numbers.money(Decimal(str(value)), cur)
        return numbers.num(value)

    rng = stats.range
    starts = [(b.start_utc, b.end_utc) for b in rng.buckets()]
    unit = stats.granularity
    return chart.build(
        series(stats.series), series(previous), starts, now_utc, unit, axis, metric != "revenue"
    )


def page_query(site: Site, report_url: Callable[..., str]) -> ReportQuery | BaseResponse:
    """The page's range and filters from the URL, or a redirect (built by `report_url`, the
    page's own URL with other arguments) that explains what was wrong: a bad range falls back
    to the last 30 days, a bad filter is dropped, the add-a-filter form becomes a filter."""
    try:
        parse(site, request.args, "page")
    except ParameterError as exc:
        flash(f"{exc.field}: {exc.message}. Showing the last 30 days.", "error")
        return redirect(report_url())
    try:
        added = panels.form_filter(request.args)
    except FilterError as exc:
        flash(f"Filter not added: {exc.message}", "error")
        added = MultiDict(request.args)
        for name in ("fdim", "fop", "fval", "fkey"):
            added.poplist(name)
    if added is not None:
        return redirect(_with_args(report_url, added))
    try:
        return parse(site, request.args, "stats")
    except ParameterError as exc:
        flash(f"{exc.field}: {exc.message}. Showing the report without filters.", "error")
        kept = MultiDict(request.args)
        kept.poplist("filter")
        return redirect(_with_args(report_url, kept))


def _with_args(report_url: Callable[..., str], args: MultiDict) -> str:
    """The page's URL with these (repeatable) arguments."""
    return report_url(**args.to_dict(flat=False))


@bp.route("/")
@login_required
def overview(site_id: int):
    """Show the site's dashboard for the range and filters in the URL."""
    site, current = _caught_up_site(site_id)
    page_url = _overview_url(site)
    query = page_query(site, page_url)
    if not isinstance(query, ReportQuery):
        return query
    return render_template(
        "dashboard/overview.html",
        **report_context(site, query, current, page_url),
        quests=quests_for(site),
        current_visitors=current_visitors(site.id, utcnow()),
        has_events=bool(reports.recent_events(site.id, limit=1)),
        exact_limit=reports.exact_limit(),
    )


def _overview_url(site: Site) -> Callable[..., str]:
    """The dashboard's own URL with other arguments."""
    return lambda **args: url_for("dashboard.overview", site_id=site.id, **args)


def report_context(
    site: Site,
    query: ReportQuery,
    current: Freshness,
    report_url: Callable[..., str],
    shared: bool = False,
) -> dict[str, Any]:
    """What dashboard/_reports.html needs to show a readable site's figures, chart and panels
    over the query's range and filters: the dashboard and the shared links' page both render
    through this one function. `report_url(**args)` is the page's own URL with other
    arguments; `shared` leaves out what needs a session (Details, CSV, the panels' fetch)."""
    rng, filters = query.range, query.filters
    metric = request.args.get("metric", "visitors")
    if metric not in METRICS:
        metric = "visitors"
    now_utc = utcnow()
    if filters:
        # The previous period's chart from the same read of the events as the figures.
        stats, previous = filtered.stats_and_previous_series(site, rng, filters)
        current = backlog.from_events(db.session)
    else:
        stats = reports.stats(site, rng)
        previous = previous_series(site, rng)
    keys = reports.property_keys(site)
    # The panels read the range's events one by one (the breakdown report): inline while
    # that is quick, else the dashboard answers first and its script fetches them. A shared
    # page has no session for that fetch and reads them inline.
    large = not shared and holds_more_than(site.id, rng.start_utc, rng.end_utc, PANEL_INLINE_EVENTS)
    grid = None if large else _grid(site, query, stats, keys)
    cur = site.currency
    return {
        "site": site,
        "shared": shared,
        "stats": stats,
        "rng": rng,
        "periods": ranges.PERIODS,
        "metric": metric,
        "metrics": METRICS,
        "chart": _chart(site, stats, previous, metric, now_utc),
        "figures": shown_figures(stats.totals, stats.previous, cur, rng.start_utc <= now_utc),
        "panels": grid,
        "panel_inline_events": PANEL_INLINE_EVENTS,
        "tab_name": panels.tab_name,
        "value_kind": panels.value_kind,
        "property_keys": keys,
        "chips": panels.chips(filters, request.args),
        "filter_dimensions": panels.filter_dimensions(),
        "operators": panels.OPERATORS,
        "filters": [str(f) for f in filters],
        "args": request.args,
        "url_with": linker(site, report_url),
        "report_url": report_url,
        "archived_count": sum(1 for r in stats.rules if r.archived),
        "range_args": rng.query_args(),
        "freshness_notice": notice(current, rng.tz),
    }


def _grid(site: Site, query: ReportQuery, stats: Stats, keys: list[str]):
    """The dashboard's panels: the acquisition ones, Goals, then Properties."""
    key = panels.chosen_key(keys, request.args.get("prop", ""))
    grid = panels.shown_panels(site, query.range, query.filters, request.args, key)
    grid.insert(len(grid) - (key is not None), panels.goals_panel(stats.rules))
    return grid


@bp.route("/panels")
@login_required
def panel_grid(site_id: int):
    """The dashboard's grid of panels alone (its script fetches it for a large range)."""
    site, _ = _caught_up_site(site_id)
    try:
        query = parse(site, request.args, "stats")
    except ParameterError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}") from None
    if query.filters:
        stats = filtered.stats(site, query.range, query.filters)
    else:
        stats = reports.stats(site, query.range)
    keys = reports.property_keys(site)
    return render_template(
        "dashboard/_panels.html",
        site=site,
        panels=_grid(site, query, stats, keys),
        tab_name=panels.tab_name,
        value_kind=panels.value_kind,
        property_keys=keys,
        args=request.args,
        url_with=linker(site, _overview_url(site)),
        report_url=_overview_url(site),
        shared=False,
        archived_count=sum(1 for r in stats.rules if r.archived),
    )


def _site_url(site: Site, args: MultiDict, endpoint: str) -> str:
    """A URL of this site's page with these (repeatable) arguments."""
    base = url_for(endpoint, site_id=site.id)
    query = urlencode(list(args.items(multi=True)))
    return f"{base}?{query}" if query else base


def linker(site: Site, report_url: Callable[..., str]) -> Callable[..., str]:
    """The templates' `url_with(site, args, endpoint=None, **changes)`: a URL with the current
    arguments, some changed (None removes one; `add_filter=(dimension, op, value)` adds that
    filter to those present); without an endpoint, the page's own (`report_url`), else that
    route of the site (which needs a session)."""

    def url_with(_site: Site, args: MultiDict, endpoint: str | None = None, **changes) -> str:
        kept = MultiDict(args)
        added = changes.pop("add_filter", None)
        if added is not None:
            kept = panels.with_filter(kept, *added)
        for name, value in changes.items():
            kept.poplist(name)
            if value is not None:
                kept[name] = value
        if endpoint is None:
            return _with_args(report_url, kept)
        return _site_url(site, kept, endpoint)

    return url_with


@bp.route("/breakdown")
@login_required
def details(site_id: int):
    """One dimension's full list over the range and filters, a page at a time."""
    site = site_or_404(current_principal(), site_id, "read")
    args = MultiDict(request.args)
    if "limit" not in args:
        args["limit"] = str(DETAILS_ROWS)
    try:
        query = parse(site, args, "breakdown")
    except ParameterError as exc:
        flash(f"{exc.field}: {exc.message}.", "error")
        return redirect(url_for("dashboard.overview", site_id=site.id))
    dimension = query.dimension or ""
    report = dimension_rows(site, query.range, dimension, query.filters, query.limit, query.offset)
    most = max((row.visitors for row in report.rows), default=0)
    return render_template(
        "dashboard/details.html",
        site=site,
        report=report,
        rng=query.range,
        dimension=dimension,
        heading=panels.tab_name(dimension),
        most=most,
        args=request.args,
        url_with=linker(site, _overview_url(site)),
        chips=panels.chips(query.filters, request.args),
        offset=query.offset,
        limit=query.limit,
    )


@bp.route("/breakdown.csv")
@login_required
def details_csv(site_id: int):
    """One dimension's whole list over the range and filters as a CSV download."""
    site = site_or_404(current_principal(), site_id, "read")
    try:
        query = parse(site, request.args, "breakdown")
    except ParameterError as exc:
        raise BadRequest(f"{exc.field}: {exc.message}") from None
    dimension = query.dimension or ""
    report = dimension_rows(site, query.range, dimension, query.filters, MAX_OFFSET, 0)
    rng = query.range
    safe = "".join(c if c.isalnum() else "-" for c in dimension)
    name = f"{site.domain}-{safe}-{rng.first.isoformat()}-{rng.last.isoformat()}.csv"
    return Response(
        serialise.dimension_csv(site, report),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


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
