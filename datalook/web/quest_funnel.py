"""The "Build your first funnel" quest: suggested steps from the site's own data, and done."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..analytics.funnels.models import Funnel
from ..models import Event, SuccessRule

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


def suggested_steps(session: Session, site_id: int) -> list[dict]:
    """Two to four steps: the commonest pages (home first), then the first success rule."""
    paths = common_paths(session, site_id, 3)
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
