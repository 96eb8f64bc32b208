"""Journeys: the most common page-path sequences of sessions, and where visitors go next.

Sessions come from the precomputed `visitor_sessions` (see sessions.py); a session belongs
to the range in which it started. A journey is the first N steps of a session (N from 1 to
10, default 5); with `end`, the sessions whose last page is `end`, and their last N steps.
`rule` keeps the sessions that converted on that success rule. `converted` counts the
sessions with a success (of `rule`, when given).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from ..ingest.schema import MAX_NAME, MAX_PATH
from .funnel_models import VisitorSession
from .ranges import DateRange
from .sessions import CUT_WIDTH, KEPT_STEPS, decode_steps

DEFAULT_STEPS = 5
TOP = 100
LEFT = None  # the next step of a visitor who left


class JourneyError(ValueError):
    """A journeys parameter that cannot be used; names the parameter."""

    def __init__(self, field: str, code: str, message: str) -> None:
        """Keep the field and the machine-readable code beside the message."""
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


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
        raise JourneyError(key, "invalid_path", f"{key} must be a page path starting with /")
    return value


def parse_query(args: Mapping[str, str]) -> JourneyQuery:
    """Read steps/start/end/rule from request arguments or raise JourneyError."""
    raw = args.get("steps") or str(DEFAULT_STEPS)
    if not raw.isdigit() or not 1 <= int(raw) <= KEPT_STEPS:
        raise JourneyError("steps", "out_of_range", f"steps must be from 1 to {KEPT_STEPS}")
    rule = args.get("rule") or None
    if rule is not None and (len(rule) > MAX_NAME or "|" in rule):
        raise JourneyError("rule", "invalid_rule", "rule must be a success rule name")
    return JourneyQuery(int(raw), _path_arg(args, "start"), _path_arg(args, "end"), rule)


def _cut(cuts, index):
    """SQL: the end offset of kept step `index` (1-based) in the encoded text."""
    position = (index - 1) * CUT_WIDTH + 1
    return cast(func.substr(cuts, position, CUT_WIDTH), Integer)


def _filters(site_id: int, rng: DateRange, query: JourneyQuery) -> list:
    """The WHERE of a journeys query."""
    t = VisitorSession.__table__.c
    where = [t.site_id == site_id, t.started_at >= rng.start_utc, t.started_at < rng.end_utc]
    if query.start:
        where.append(func.substr(t.paths, 1, _cut(t.cuts, 1)) == query.start)
    if query.end:
        where.append(t.last_path == query.end)
    if query.rule:
        where.append(t.rules.contains(f"|{query.rule}|", autoescape=True))
    return where


def _journey_key(query: JourneyQuery):
    """SQL: the journey text of a session (first N steps, or last N with `end`)."""
    t = VisitorSession.__table__.c
    n = query.steps
    if not query.end:
        return func.substr(t.paths, 1, _cut(t.cuts, n))
    kept = case((t.path_count < KEPT_STEPS, t.path_count), else_=literal(KEPT_STEPS))
    # Offset (1-based) of the last N kept steps: just after the cut ending step kept-N.
    skip = kept - n
    offset = (skip - 1) * CUT_WIDTH + 1
    start = cast(func.substr(t.tail_cuts, offset, CUT_WIDTH), Integer) + 2
    return case((skip <= 0, t.tail), else_=func.substr(t.tail, start))


def top_journeys(session: Session, site_id: int, rng: DateRange, query: JourneyQuery) -> dict:
    """The top 100 journeys and the number of sessions they were drawn from."""
    t = VisitorSession.__table__.c
    where = _filters(site_id, rng, query)
    key = _journey_key(query).label("journey")
    converted = (func.count(t.id) if query.rule else func.coalesce(func.sum(t.converted), 0)).label(
        "converted"
    )
    rows = session.execute(
        select(
            key,
            func.count(t.id).label("sessions"),
            func.count(t.visitor_id.distinct()).label("visitors"),
            converted,
        )
        .where(and_(*where))
        .group_by(key)
        .order_by(func.count(t.id).desc(), key)
        .limit(TOP)
    ).all()
    total = session.scalar(select(func.count(t.id)).where(and_(*where)))
    return {
        "journeys": [
            {
                "paths": decode_steps(journey),
                "sessions": sessions,
                "visitors": visitors,
                "converted": int(conv),
            }
            for journey, sessions, visitors, conv in rows
        ],
        "sessions_total": total or 0,
    }


def next_steps(
    session: Session, site_id: int, rng: DateRange, path: str, query: JourneyQuery
) -> dict:
    """From `path` (its first visit in each session), where visitors go next, or "left"
    (`path` None: the session ended there).

    Read from a session's kept steps (its first sessions.KEPT_STEPS pages): a session whose
    first visit of `path` is its last kept step and that went on has no kept next step, so
    it is left out, of the rows and of `sessions_total` alike.
    """
    t = VisitorSession.__table__.c
    where = _filters(site_id, rng, query)
    framed = literal("\n") + t.paths + literal("\n")
    rows = session.execute(
        select(t.visitor_id, t.paths, t.path_count).where(
            and_(*where), framed.contains(f"\n{path}\n", autoescape=True)
        )
    )
    sessions: Counter = Counter()
    visitors: dict[str | None, set[str]] = defaultdict(set)
    total = 0
    for visitor, paths, count in rows:
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
