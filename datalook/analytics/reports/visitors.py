"""Distinct visitors of a range: exact sets from raw events below the exact limit, else
HyperLogLog sketches merged per span (the settled part from the per-process cache)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, case, distinct, func, select, type_coerce

from ...extensions import db
from ...models import Event
from .. import settled, sketches
from ..ranges import Bucket
from ..rollups import accumulate as summaries
from ..rollups.models import (
    VisitorSketch,
)
from ..visitor_ids import is_visitor
from .spans import IS_TEST, WEEK, cut_spans, pieces, raw_rows


@dataclass
class ExactVisitors:
    """Distinct visitors of a range, counted from its raw events."""

    everyone: set = field(default_factory=set)
    converters: set = field(default_factory=set)
    rules: dict = field(default_factory=lambda: defaultdict(set))
    pages: dict = field(default_factory=lambda: defaultdict(set))
    buckets: list = field(default_factory=list)


def exact_visitors(site_id: int, start: datetime, end: datetime, buckets: list) -> ExactVisitors:
    """Collect the visitor ids of [start, end) per dimension and per chart bucket."""
    found = ExactVisitors(buckets=[set() for _ in buckets])
    occurred_at: Any = Event.occurred_at
    starts: list = [bucket.start_utc for bucket in buckets]
    if db.engine.dialect.name == "sqlite":
        # Compare SQLite's stored text with the bucket starts in the same spelling: parsing a
        # datetime per row cost more than the rest of the pass.
        occurred_at = type_coerce(Event.occurred_at, String)
        starts = [start.isoformat(" ", "microseconds") for start in starts]
    rows = db.session.execute(
        select(Event.visitor_id, occurred_at, Event.event_name, Event.name, Event.page_path)
        .where(Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end)
        .where(Event.visitor_id.not_like("a:%"), Event.counted())
    )
    for visitor, occurred, kind, name, page in rows:
        if not is_visitor(visitor):
            continue
        found.everyone.add(visitor)
        found.pages[page[: summaries.MAX_PAGE]].add(visitor)
        if kind == "success":
            found.converters.add(visitor)
            if name is not None:
                found.rules[name].add(visitor)
        if starts:
            found.buckets[bisect.bisect_right(starts, occurred) - 1].add(visitor)
    return found


def loose_ids(site_id: int, edges: list, dims: list[str]) -> dict[str, set]:
    """Visitor ids per dimension in the sub-hour edges, from raw events (a test key's
    events count nowhere, as in the folded sketches of whole hours)."""
    loose: dict[str, set] = {dim: set() for dim in dims}
    for a, b in edges:
        for row in raw_rows(site_id, a, b):
            visitor, kind, name, page = row[5], row[2], row[3], row[4][: summaries.MAX_PAGE]
            if row[IS_TEST] or not is_visitor(visitor):
                continue
            for dim in ("", "p:" + page, *(("c", f"r:{name}") if kind == "success" else ())):
                if dim in loose:
                    loose[dim].add(visitor)
    return loose


def stored_sketches(site_id: int, dims: list[str], spans: list) -> dict[str, list]:
    """The stored sketches of each dimension over the (hours, start, end) spans."""
    stored: dict[str, list] = {dim: [] for dim in dims}
    s = VisitorSketch
    for span, a, b in spans:
        rows = db.session.execute(
            select(s.dim, s.sketch).where(
                s.site_id == site_id, s.hours == span, s.dim.in_(dims), s.start >= a, s.start < b
            )
        )
        for dim, data in rows:
            stored[dim].append(data)
    return stored


def settled_sketches(site_id: int, dims: list[str], spans: list, edges: list, gen: int) -> dict:
    """The merged sketch of each dimension over settled spans and edges, from the cache or
    read once and cached (None for a dimension without visitors there)."""
    if not spans and not edges:
        return dict.fromkeys(dims)
    shape = (tuple(spans), tuple(edges))
    found = {dim: settled.cache.get((site_id, gen, "dim", dim, shape)) for dim in dims}
    missing = [dim for dim in dims if found[dim] is None]
    if missing:
        stored = stored_sketches(site_id, missing, spans)
        loose = loose_ids(site_id, edges, missing)
        for dim in missing:
            merged = sketches.union_of(stored[dim], loose[dim])
            # An empty part is cached too (as False), or it would be read again each time.
            settled.cache.put((site_id, gen, "dim", dim, shape), merged or False)
            found[dim] = merged
    return {dim: found[dim] or None for dim in dims}


def estimates(
    site_id: int, dims: list[str], start: datetime, end: datetime, gen: int | None = None
) -> dict[str, int]:
    """Estimated distinct visitors per dimension in [start, end), from the sketches.

    With a generation (see analytics.settled), the part of the range before the settled
    boundary comes merged from the cache: a long range then reads only its last weeks.
    """
    spans, edges = pieces(start, end, weeks=True)
    base: dict = dict.fromkeys(dims)
    if gen is not None:
        cut = settled.boundary()
        old_spans, spans = cut_spans(spans, cut)
        old_edges = [edge for edge in edges if edge[1] <= cut]
        edges = [edge for edge in edges if edge[1] > cut]
        base = settled_sketches(site_id, dims, old_spans, old_edges, gen)
    stored = stored_sketches(site_id, dims, spans)
    loose = loose_ids(site_id, edges, dims)
    return {dim: sketches.estimate_with(base[dim], stored[dim], loose[dim]) for dim in dims}


def distinct_visitors(site_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """Exact distinct visitors and converters of [start, end), counted by the database."""
    visitor = Event.visitor_id
    converter = case((Event.event_name == "success", visitor))
    row = db.session.execute(
        select(func.count(distinct(visitor)), func.count(distinct(converter)))
        .where(Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end)
        .where(visitor.not_like("a:%"), Event.counted())
    ).one()
    return int(row[0]), int(row[1])


def bucket_visitor_estimates(site_id: int, buckets: list[Bucket]) -> list[int]:
    """Estimated visitors per bucket: one query per span size, merged in memory."""
    if not buckets:
        return []
    plans = [pieces(b.start_utc, b.end_utc, weeks=True) for b in buckets]
    s = VisitorSketch
    first, last = buckets[0].start_utc - WEEK, buckets[-1].end_utc
    stored: dict[int, tuple[list, list]] = {}
    for span in sorted({n for spans, _ in plans for n, _a, _b in spans}):
        rows = db.session.execute(
            select(s.start, s.sketch)
            .where(
                s.site_id == site_id,
                s.hours == span,
                s.dim == "",
                s.start >= first,
                s.start < last,
            )
            .order_by(s.start)
        ).all()
        stored[span] = ([row[0] for row in rows], [row[1] for row in rows])
    out = []
    for spans, edges in plans:
        found = []
        for span, a, b in spans:
            starts, data = stored[span]
            found += data[bisect.bisect_left(starts, a) : bisect.bisect_left(starts, b)]
        out.append(sketches.estimate(found, loose_ids(site_id, edges, [""])[""]))
    return out
