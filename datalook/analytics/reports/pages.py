"""The top pages of a range by events, with their visitors."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from ...extensions import db
from ..ranges import DateRange
from ..rollups.models import (
    HourlyPage,
)
from .model import PageRow
from .spans import covering, raw_acc
from .visitors import ExactVisitors, estimates

TOP_PAGES = 20


def top_pages(site_id: int, rng: DateRange, exact: ExactVisitors | None, gen: int) -> list[PageRow]:
    """The top pages by events, with their visitors."""
    p = HourlyPage
    covered, edges = covering(p, rng.start_utc, rng.end_utc)
    events: dict[str, int] = defaultdict(int)
    if covered is not None:
        total = func.sum(p.events)
        rows = db.session.execute(
            select(p.page_path, total)
            .where(p.site_id == site_id, covered)
            .group_by(p.page_path)
            .order_by(total.desc(), p.page_path)
            .limit(TOP_PAGES * 2 if edges else TOP_PAGES)
        )
        for path, count in rows:
            events[path] = int(count)
    if edges:
        for (_s, span, _h, path), count in raw_acc(site_id, edges).pages.items():
            if span == 1:
                events[path] += count
    top = sorted(events.items(), key=lambda item: (-item[1], item[0]))[:TOP_PAGES]
    if exact is not None:
        seen = {path: len(exact.pages.get(path, ())) for path, _ in top}
    else:
        dims = [f"p:{p}" for p, _ in top]
        estimated = estimates(site_id, dims, rng.start_utc, rng.end_utc, gen)
        seen = {path: estimated[f"p:{path}"] for path, _ in top}
    return [PageRow(path, count, seen[path]) for path, count in top]
