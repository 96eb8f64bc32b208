"""The "Build your first funnel" quest: suggested steps from the site's own data, and done."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..analytics import freshness, journeys
from ..analytics.funnels.models import Funnel
from ..analytics.journeys import JourneyQuery
from ..analytics.ranges import site_range
from ..models import Event, Site, SuccessRule

# Suggestions look at the newest events only: the quest page costs the same at any size.
SAMPLE_EVENTS = 5_000


def common_paths(session: Session, site_id: int, limit: int = 5) -> list[str]:
    """The most common page paths of the site's newest page views."""
    rows = session.execute(
        select(Event.page_path)
        .where(Event.site_id == site_id, Event.counted())
        .order_by(Event.occurred_at.desc())
        .limit(SAMPLE_EVENTS)
        .where(Event.event_name == "pageview")
    ).scalars()
    return [path for path, _ in Counter(rows).most_common(limit)]


def rule_names(session: Session, site_id: int, limit: int = 5) -> list[str]:
    """The site's success rules, oldest first."""
    return list(
        session.scalars(
            select(SuccessRule.name)
            .where(SuccessRule.site_id == site_id, SuccessRule.listed())
            .order_by(SuccessRule.first_seen_at, SuccessRule.id)
            .limit(limit)
        )
    )


# The journey a suggestion follows: the first pages of sessions, at most this many.
SUGGESTED_PAGES = 3


def common_journey(session: Session, site: Site) -> list[str]:
    """The pages of the site's most common journey of two or more pages (the first
    SUGGESTED_PAGES of its sessions, last 30 days), from the derived sessions as the
    journeys report reads them; [] when no session visited two pages."""
    rng = site_range(site, {})
    # The sessions of the last events first, within a report's budget, as the journeys page.
    freshness.catch_up_sessions(session, freshness.report_deadline())
    top = journeys.top_journeys(session, site.id, rng, JourneyQuery(steps=SUGGESTED_PAGES))
    for journey in top["journeys"]:  # most sessions first
        if len(journey["paths"]) >= 2:
            return list(journey["paths"])
    return []


def suggested_steps(session: Session, site_id: int) -> list[dict]:
    """Two to four steps: the pages of the site's most common journey (else its commonest
    pages, home first), then its first success rule."""
    site = session.get(Site, site_id)
    paths = common_journey(session, site) if site is not None else []
    if not paths:
        paths = common_paths(session, site_id, SUGGESTED_PAGES)
        if "/" in paths:
            paths.remove("/")
            paths.insert(0, "/")
    rules = rule_names(session, site_id, 1)
    steps: list[dict] = [{"event_name": "pageview", "page_path": p} for p in paths[:3]]
    if rules:
        steps.append({"event_name": "success", "name": rules[0]})
    while len(steps) < 2:
        steps.append({"event_name": "pageview"})
    return steps


def funnel_quest_done(session: Session, site_id: int) -> bool:
    """The quest is done once the site has a saved funnel."""
    return session.scalar(select(Funnel.id).where(Funnel.site_id == site_id).limit(1)) is not None
