"""Onboarding quests and their state for a site."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..extensions import db
from ..models import ApiKey, Event, Site
from .quest_funnel import funnel_quest_done


@dataclass(frozen=True)
class Quest:
    """One onboarding step shown on the dashboard."""

    slug: str
    title: str
    summary: str
    state: str  # "done", "todo" or "later"
    endpoint: str | None


def server_events_done(site: Site) -> bool:
    """The backend quest is done once any key of the site has delivered an event.

    One index seek per key of the site (events by api_key_id): asking for any event of the
    site with a key read every browser event of a site that has none (10M rows, per view).
    """
    keys = db.session.scalars(select(ApiKey.id).where(ApiKey.site_id == site.id)).all()
    for key_id in keys:
        found = db.session.scalar(select(Event.id).where(Event.api_key_id == key_id).limit(1))
        if found is not None:
            return True
    return False


def browser_events_done(site: Site) -> bool:
    """The browser quest is done once a page has sent its first pageview (kept on the site)."""
    return site.first_pageview_at is not None


def quests_for(site: Site) -> list[Quest]:
    """Return the quests in the order a new site owner should take them."""
    done = server_events_done(site)
    return [
        Quest(
            "server-events",
            "Send events from your backend",
            "Create an API key and post confirmed conversions from your server, "
            "out of reach of ad blockers.",
            "done" if done else "todo",
            "quests.server_events",
        ),
        Quest(
            "browser-sdk",
            "Add the browser snippet",
            "Page views and clicks from your web pages, without cookies.",
            "done" if browser_events_done(site) else "todo",
            "browser_quest.show",
        ),
        Quest(
            "funnel",
            "Build your first funnel",
            "See where visitors drop off on the way to success.",
            "done" if funnel_quest_done(db.session(), site.id) else "todo",
            "funnels.quest",
        ),
        Quest("team", "Invite your team", "Share the dashboard with colleagues.", "later", None),
    ]
