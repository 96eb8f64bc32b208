"""Journeys: the most common page-path sequences of sessions, and where visitors go next.

Sessions come from the precomputed `visitor_sessions` (see sessions.py); a session belongs
to the range in which it started. A journey is the first N steps of a session (N from 1 to
10, default 5); with `end`, the sessions whose last page is `end`, and their last N steps.
`rule` keeps the sessions that converted on that success rule. `converted` counts the
sessions with a success (of `rule`, when given). With filters (`kept`: the sessions whose
visit passes them, reports.visit_filter) the range's sessions are read and counted here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from ..ingest.schema import MAX_NAME, MAX_PATH
from . import journey_days, settled
from .funnels.models import VisitorSession
from .parameters import ParameterError
from .ranges import DateRange
from .sessions import CUT_WIDTH, GENERATION, KEPT_STEPS, boundary, decode_steps, journey_key

DEFAULT_STEPS = 5
TOP = 100
IDS_PER_QUERY = 500
# A settled part: four figures per journey.
_cache = settled.AppCache("datalook_journeys_cache", 16)
LEFT = None  # the next step of a visitor who left


@dataclass(frozen=True)
class JourneyQuery:
    """What the journeys report asks for."""

    steps: int = DEFAULT_STEPS
    start: str | None = None
    end: str | None = None
    rule: str | None = None


def _path_arg(args: Mapping[str, str], key: str) -> str | None:
    """An optional page path parameter."""
    value = args.get(key) or None
    if value is not None and (not value.startswith("/") or len(value) > MAX_PATH):
        raise ParameterError(key, "invalid_path", f"{key} must be a page path starting with /")
    return value


def parse_query(args: Mapping[str, str]) -> JourneyQuery:
    """Read steps/start/end/rule from request arguments or raise ParameterError."""
    raw = args.get("steps") or str(DEFAULT_STEPS)
    if not raw.isdigit() or not 1 <= int(raw) <= KEPT_STEPS:
        raise ParameterError("steps", "out_of_range", f"steps must be from 1 to {KEPT_STEPS}")
    rule = args.get("rule") or None
    if rule is not None and (len(rule) > MAX_NAME or "|" in rule):
        raise ParameterError("rule", "invalid_rule", "rule must be a success rule name")
    return JourneyQuery(int(raw), _path_arg(args, "start"), _path_arg(args, "end"), rule)


def _filters(site_id: int, rng: DateRange, query: JourneyQuery) -> list:
    """The WHERE of a journeys query."""
    return _span_filters(site_id, (rng.start_utc, rng.end_utc), query)


def _span_filters(site_id: int, span: tuple[datetime, datetime], query: JourneyQuery) -> list:
    """The WHERE of a journeys query over the sessions that started in [start, end).

    One bound of each side only: given two lower bounds, SQLite scans the index from the
    one it picks and filters by the other, so the fresh part of a 90-day range would walk
    the index entries of all 90 days."""
    t = VisitorSession.__table__.c
    where = [t.site_id == site_id, t.started_at >= span[0], t.started_at < span[1]]
    return where + _session_filters(query)


def _session_filters(query: JourneyQuery) -> list:
    """The conditions of a journeys query on the sessions themselves (not their time)."""
    t = VisitorSession.__table__.c
    where = []
    if query.start:
        where.append(t.j1 == journey_key([query.start]))
    if query.end:
        where.append(t.last_path == query.end)
    if query.rule:
        where.append(t.rules.contains(f"|{query.rule}|", autoescape=True))
    return where


def _ending_key(steps: int):
    """SQL: the text of a session's last `steps` steps (from its kept tail)."""
    t = VisitorSession.__table__.c
    kept = case((t.path_count < KEPT_STEPS, t.path_count), else_=literal(KEPT_STEPS))
    # Offset (1-based) of the last N kept steps: just after the cut ending step kept-N.
    skip = kept - steps
    offset = (skip - 1) * CUT_WIDTH + 1
    start = cast(func.substr(t.tail_cuts, offset, CUT_WIDTH), Integer) + 2
    return case((skip <= 0, t.tail), else_=func.substr(t.tail, start))


def _key(query: JourneyQuery):
    """SQL: the journey key of a session."""
    if query.end:
        # Few sessions end at one path: grouped by the text of their tails.
        return _ending_key(query.steps)
    # Grouped by the integer key of the first N steps, from the covering index.
    return VisitorSession.__table__.c[f"j{query.steps}"]


@dataclass
class JourneyCounts:
    """Per journey key: sessions, converted, the smallest session id, and visitors (each
    counted once in the sessions counted)."""

    sessions: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    sample: dict = field(default_factory=dict)
    visitors: Counter = field(default_factory=Counter)

    def add(self, key, sessions: int, converted: int, sample: int, visitors: int) -> None:
        """Add one journey's figures of a part of the range."""
        self.sessions[key] += sessions
        self.converted[key] += converted
        self.sample[key] = min(self.sample.get(key, sample), sample)
        self.visitors[key] += visitors

    @classmethod
    def of_rows(cls, rows: Sequence) -> JourneyCounts:
        """The figures of rows (key, sessions, converted, smallest id, visitors), one per
        journey: built by column, since a 90-day range has hundreds of thousands."""
        if not rows:
            return cls()
        keys, sessions, converted, sample, visitors = zip(*rows, strict=True)
        return cls(
            Counter(dict(zip(keys, sessions, strict=True))),
            Counter(dict(zip(keys, converted, strict=True))),
            dict(zip(keys, sample, strict=True)),
            Counter(dict(zip(keys, visitors, strict=True))),
        )

    def copy(self) -> JourneyCounts:
        """A copy to add to (the cached part stays as it is)."""
        return JourneyCounts(
            Counter(self.sessions),
            Counter(self.converted),
            dict(self.sample),
            Counter(self.visitors),
        )


def _counted(
    session: Session, query: JourneyQuery, where: list, visitors: bool = True
) -> JourneyCounts:
    """The figures per journey of the sessions `where`, counted by the database (a few
    rows per journey come back, however many sessions there are); without `visitors`,
    their distinct visitors are left at 0 (the fresh part counts them from its pairs)."""
    t = VisitorSession.__table__.c
    key = _key(query)
    converted = func.count() if query.rule else func.coalesce(func.sum(t.converted), 0)
    distinct = func.count(t.visitor_id.distinct()) if visitors else literal(0)
    rows = session.execute(
        select(key, func.count(), converted, func.min(t.id), distinct)
        .where(and_(*where))
        .group_by(key)
    ).all()
    return JourneyCounts.of_rows(rows)


def _settled_counts(
    session: Session,
    site_id: int,
    query: JourneyQuery,
    span: tuple[datetime, datetime],
) -> tuple[JourneyCounts, journey_days.DaySources | None]:
    """The figures per journey of the settled part (`span`: [start, cut)), and the
    sources that cover it (journey_days; None: counted from the table)."""
    sources = journey_days.day_sources(session, site_id, *span)
    if sources is None:
        return _counted(session, query, _span_filters(site_id, span, query)), None
    rows = journey_days.counted(sources, span, query.steps, _day_filters(query))
    return JourneyCounts.of_rows(rows), sources


def _day_filters(query: JourneyQuery) -> journey_days.Filters:
    """The query's filters as journey_days takes them."""
    return (query.start, query.end, query.rule)


def _fresh(session: Session, query: JourneyQuery, where: list) -> tuple[JourneyCounts, list[tuple]]:
    """The figures per journey of the sessions `where` (a day at most) without their
    visitors, and the distinct (journey, visitor) pairs to count them from.

    Two grouped reads of the same index range: the figures come back per journey (a few
    thousand rows), so Python handles each pair once instead of folding every group."""
    t = VisitorSession.__table__.c
    key = _key(query)  # one expression (its parameters) in SELECT and GROUP BY
    counts = _counted(session, query, where, visitors=False)
    pairs = session.execute(select(key, t.visitor_id).where(and_(*where)).distinct()).all()
    return counts, [tuple(pair) for pair in pairs]


def _look_up_earlier(
    session: Session,
    site_id: int,
    query: JourneyQuery,
    visitors: list[str],
    span: tuple[datetime, datetime],
    known: dict[str, set],
) -> None:
    """Note in `known`, per visitor not in it yet, the journeys of their sessions that
    started within `span` (the kept part of the range), read by the visitors' own index
    (site, visitor, end), IDS_PER_QUERY at a time."""
    t = VisitorSession.__table__.c
    start, cut = span
    missing = [visitor for visitor in visitors if visitor not in known]
    for offset in range(0, len(missing), IDS_PER_QUERY):
        chunk = missing[offset : offset + IDS_PER_QUERY]
        found: dict[str, set] = {visitor: set() for visitor in chunk}
        rows = session.execute(
            select(_key(query), t.visitor_id, t.started_at).where(
                t.site_id == site_id,
                t.visitor_id.in_(chunk),
                # Implied by the start (a session ends after it starts) and in the index;
                # the start itself is checked here, so no index by time is chosen instead.
                t.ended_at >= start,
                *_session_filters(query),
            )
        )
        for journey, visitor, at in rows:
            if start <= at < cut:
                found[visitor].add(journey)
        known.update(found)


def top_journeys(
    session: Session,
    site_id: int,
    rng: DateRange,
    query: JourneyQuery,
    kept: set[tuple[str, datetime]] | None = None,
) -> dict:
    """The top 100 journeys (most sessions first, then by their paths) and the number of
    sessions they were drawn from.

    Counted by the database per journey (sessions, converted, visitors): only a few rows
    per journey are read, so a first view costs one grouped scan of the range's index
    entries. The range splits at sessions.boundary() (a UTC midnight at least two hours
    back): sessions that started before it change only with a bump of the sessions'
    generation, so their figures are kept per process under that generation; the fresh
    part (a day at most) is counted each time and added, its visitors counted only where
    they have no earlier session of the journey in the range. A process's first view of
    the settled part counts it with DuckDB from the sessions' day files when they cover it,
    but for a few changed days read from the table (journey_days; the same figures), and
    the journeys of the fresh part's visitors from the same sources. With `kept`
    ((visitor, start) of the sessions to count), only those, from the table.
    """
    if kept is not None:
        return _kept_journeys(session, site_id, rng, query, kept)
    cut = min(max(boundary(), rng.start_utc), rng.end_utc)
    if cut <= rng.start_utc:  # nothing settled: the whole range at once
        return _ranked(session, _counted(session, query, _filters(site_id, rng, query)), query)
    generation = settled.generation(session, GENERATION)
    cache_key = ("journeys", site_id, generation, query, rng.start_utc, cut)
    found = _cache.get(cache_key)
    sources = None
    if found is None:
        # With, per visitor looked up, the journeys of their kept sessions: the fresh
        # part's visitors change little from one view to the next.
        settled_counts, sources = _settled_counts(session, site_id, query, (rng.start_utc, cut))
        found = (settled_counts, {})
        _cache.put(cache_key, found)
    old, known = found
    counts = old.copy()
    if cut < rng.end_utc:
        fresh, pairs = _fresh(session, query, _span_filters(site_id, (cut, rng.end_utc), query))
        visitors = sorted({visitor for _, visitor in pairs})
        if sources is not None:  # a first view: every visitor at once, from the same sources
            span = (rng.start_utc, cut)
            known.update(
                journey_days.journeys_of(sources, span, query.steps, _day_filters(query), visitors)
            )
        _look_up_earlier(session, site_id, query, visitors, (rng.start_utc, cut), known)
        for key, n in fresh.sessions.items():
            counts.add(key, n, fresh.converted[key], fresh.sample[key], 0)
        # A visitor of the fresh part counts where the kept part has not counted them.
        counts.visitors.update(journey for journey, v in pairs if journey not in known[v])
    return _ranked(session, counts, query)


def _ranked(session: Session, counts: JourneyCounts, query: JourneyQuery) -> dict:
    """The answer: the first TOP journeys by sessions, ties in the order of their paths."""
    by_sessions = counts.sessions.most_common()
    if not by_sessions:
        return {"journeys": [], "sessions_total": 0}
    edge = by_sessions[min(TOP, len(by_sessions)) - 1][1]
    # Every journey as frequent as the TOP-th one: the ties at the edge are ordered by
    # their paths, which the integer keys cannot do, so their texts are read first.
    candidates = [key for key, n in by_sessions if n >= edge]
    if query.end:
        texts = {key: key for key in candidates}
    else:
        by_sample = _head_texts(session, [counts.sample[k] for k in candidates], query.steps)
        texts = {key: by_sample[counts.sample[key]] for key in candidates}
    chosen = sorted(candidates, key=lambda k: (-counts.sessions[k], texts[k]))[:TOP]
    return {
        "journeys": [
            {
                "paths": decode_steps(texts[key]),
                "sessions": counts.sessions[key],
                "visitors": counts.visitors[key],
                "converted": int(counts.converted[key]),
            }
            for key in chosen
        ],
        "sessions_total": sum(counts.sessions.values()),
    }


def _kept_journeys(
    session: Session,
    site_id: int,
    rng: DateRange,
    query: JourneyQuery,
    kept: set[tuple[str, datetime]],
) -> dict:
    """top_journeys over the `kept` sessions of the range, counted from their rows."""
    t = VisitorSession.__table__.c
    sessions: Counter = Counter()
    converted: Counter = Counter()
    visitors: dict[tuple, set[str]] = defaultdict(set)
    rows = session.execute(
        select(t.visitor_id, t.started_at, t.paths, t.tail, t.converted).where(
            and_(*_filters(site_id, rng, query))
        )
    )
    for visitor, started_at, paths, tail, was_converted in rows:
        if (visitor, started_at) not in kept:
            continue
        if query.end:
            key = tuple(decode_steps(tail)[-query.steps :])
        else:
            key = tuple(decode_steps(paths)[: query.steps])
        sessions[key] += 1
        # With a rule, every session read converted on it.
        converted[key] += 1 if query.rule else was_converted
        visitors[key].add(visitor)
    chosen = sorted(sessions, key=lambda k: (-sessions[k], "\n".join(k)))[:TOP]
    return {
        "journeys": [
            {
                "paths": list(key),
                "sessions": sessions[key],
                "visitors": len(visitors[key]),
                "converted": int(converted[key]),
            }
            for key in chosen
        ],
        "sessions_total": sum(sessions.values()),
    }


def _head_texts(session: Session, ids: list[int], steps: int) -> dict[int, str]:
    """The encoded text of the first `steps` steps of each of these sessions, by id."""
    t = VisitorSession.__table__.c
    texts: dict[int, str] = {}
    for offset in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[offset : offset + IDS_PER_QUERY]
        for session_id, paths in session.execute(select(t.id, t.paths).where(t.id.in_(chunk))):
            texts[session_id] = "\n".join(decode_steps(paths)[:steps])
    return texts


def next_steps(
    session: Session,
    site_id: int,
    rng: DateRange,
    path: str,
    query: JourneyQuery,
    kept: set[tuple[str, datetime]] | None = None,
) -> dict:
    """From `path` (its first visit in each session), where visitors go next, or "left"
    (`path` None: the session ended there).

    Read from a session's kept steps (its first sessions.KEPT_STEPS pages): a session whose
    first visit of `path` is its last kept step and that went on has no kept next step, so
    it is left out, of the rows and of `sessions_total` alike. With `kept`, only those
    sessions ((visitor, start)) are read.
    """
    t = VisitorSession.__table__.c
    where = _filters(site_id, rng, query)
    framed = literal("\n") + t.paths + literal("\n")
    rows = session.execute(
        select(t.visitor_id, t.paths, t.path_count, t.started_at).where(
            and_(*where), framed.contains(f"\n{path}\n", autoescape=True)
        )
    )
    sessions: Counter = Counter()
    visitors: dict[str | None, set[str]] = defaultdict(set)
    total = 0
    for visitor, paths, count, started_at in rows:
        if kept is not None and (visitor, started_at) not in kept:
            continue
        steps = decode_steps(paths)
        index = steps.index(path)
        if index + 1 < len(steps):
            nxt: str | None = steps[index + 1]
        elif count <= len(steps):
            nxt = LEFT
        else:
            continue
        total += 1
        sessions[nxt] += 1
        visitors[nxt].add(visitor)
    ranked = sorted(sessions.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
    return {
        "path": path,
        "next": [
            {"path": nxt, "left": nxt is None, "sessions": n, "visitors": len(visitors[nxt])}
            for nxt, n in ranked[:TOP]
        ],
        "sessions_total": total,
    }
