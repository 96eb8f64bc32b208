"""Links of anonymous ids to users leave every derived table and report as a derivation
from scratch with the links would, whatever the order they arrive in.

Random browser events (anonymous, some identified) and server events are stored and
derived; then links arrive in a random order (browsers' links, servers' links that
override them), between further events (stored as /collect stores them: a linked id's
anonymous event counts as its user from the start), applications of the pending links and
derivations. The oracle (tests.test_deletion_oracle's) is a second site fed the events
with every anonymous event of a linked id already its user, derived from scratch; the
derived rows (events read by their own event_id) and the reports (stats.json, saved and
unsaved funnels, journeys.json) must be equal. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert

from datalook.analytics import cursors, identity
from datalook.extensions import db
from datalook.ingest import links as ingest_links
from datalook.models import LINK_FROM_BROWSER, LINK_FROM_SERVER, Event, utcnow
from tests.conftest import sign_up
from tests.test_deletion_oracle import (
    DAYS,
    START,
    Sent,
    assert_as_from_scratch,
    derive_all,
    new_site,
    random_events,
)
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

USERS = 4  # u:0 … u:3 are a backend's users; u:4 … u:11 become browsers


@dataclass(frozen=True)
class Stored:
    """An event as stored: from a browser (with its anonymous id) or from a server."""

    sent: Sent
    browser: str | None  # the anonymous id of a browser's event


def browser_id(n: int) -> str:
    """A browser's anonymous id, shaped as /collect's."""
    return f"c:{n:032x}"


def mixed_events(seed: int) -> list[Stored]:
    """Random events: the test key's and the backend users' from servers; the others'
    from browsers, a fifth of them identified as one of the backend's users."""
    rng = random.Random(seed)
    out = []
    for sent in random_events(seed, bursts=45):
        if sent.test or not sent.visitor.startswith("u:") or int(sent.visitor[2:]) < USERS:
            out.append(Stored(sent, None))
            continue
        browser = browser_id(int(sent.visitor[2:]))
        who = f"u:{rng.randrange(USERS)}" if rng.random() < 0.2 else browser
        out.append(Stored(replace(sent, visitor=who), browser))
    return out


def random_links(rng: random.Random) -> list[tuple[str, str, str]]:
    """(anonymous id, user id, origin) in arrival order: browsers' and servers' links of
    most browsers, some of them twice, in any order."""
    made = []
    for n in range(USERS, 12):
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            origin = rng.choice([LINK_FROM_BROWSER, LINK_FROM_SERVER])
            made.append((browser_id(n), str(rng.randrange(USERS + 2)), origin))
    rng.shuffle(made)
    return made


def in_force(made: list[tuple[str, str, str]]) -> dict[str, str]:
    """The user each anonymous id counts as after these links: the first link wins, except
    that a server's overrides a browser's (independent of the ingestion's code)."""
    found: dict[str, tuple[str, str]] = {}
    for anonymous, user, origin in made:
        held = found.get(anonymous)
        if held is None or (held[1] == LINK_FROM_BROWSER and origin == LINK_FROM_SERVER):
            found[anonymous] = (user, origin)
    return {anonymous: user for anonymous, (user, _) in found.items()}


def person(event: Stored, linked: dict[str, str]) -> str:
    """Whom an event counts as: an anonymous browser event of a linked id, its user."""
    if event.browser is not None and event.sent.visitor == event.browser:
        user = linked.get(event.browser)
        return f"u:{user}" if user is not None else event.browser
    return event.sent.visitor


def store(site_id: int, events: list[Stored], linked: dict[str, str]) -> None:
    """Insert events as ingestion stores them (a browser's anonymous event of an id linked
    by then counts as its user at once, as /collect does)."""
    if not events:
        return
    db.session.execute(
        insert(Event),
        [
            {
                "site_id": site_id,
                "event_name": e.sent.kind,
                "name": e.sent.name,
                "page_path": e.sent.path,
                "visitor_id": person(e, linked),
                # Identified events only (an anonymous one of a linked id has none).
                "success_user_id": e.sent.visitor[2:] if e.sent.visitor.startswith("u:") else None,
                "success_value_micros": e.sent.value,
                "properties": f'{{"plan": "{e.sent.plan}"}}' if e.sent.plan else None,
                "event_id": e.sent.serial,
                "occurred_at": e.sent.at,
                "received_at": datetime(2026, 3, 1),
                "is_test": e.sent.test,
                "from_browser": e.browser is not None,
                "anonymous_id": e.browser,
            }
            for e in events
        ],
    )
    db.session.commit()


def record(made: tuple[str, str, str], site_id: int) -> None:
    """Make one link as ingestion makes it."""
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        ingest_links.record(cursor, db.engine.dialect, site_id, [made], utcnow())
        raw.commit()
    finally:
        raw.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_app(request):
    """An app with a logged-in owner, on each database."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    client = app.test_client()
    sign_up(client)
    return app, client


@pytest.mark.parametrize("seed", [11, 12])
def test_links_in_any_order_leave_what_a_derivation_with_them_would(engine_app, seed, monkeypatch):
    app, client = engine_app
    # A moved event is stored again now, after the gap its old row leaves: on PostgreSQL a
    # cursor waits GAP_GRACE at such a gap (an insert might still be in flight). Here, in
    # one thread, none is: the gaps are final at once.
    monkeypatch.setattr(cursors, "GAP_GRACE", timedelta(0))
    rng = random.Random(seed)
    events = mixed_events(seed)
    made = random_links(rng)
    site_id = new_site(app, "America/New_York")
    later = rng.sample(range(len(events)), len(events) // 4)
    first = [e for n, e in enumerate(events) if n not in later]
    waiting = [events[n] for n in sorted(later)]
    with app.app_context():
        store(site_id, first, {})
    derive_all(app)
    # The visit figures of these days are kept per process until the sessions' generation
    # moves on: read them now, so that the comparison below shows the links moved it on.
    last = (START + timedelta(days=DAYS + 1)).date()
    dates = f"from={START.date() - timedelta(days=1)}&to={last}"
    before = client.get(f"/sites/{site_id}/stats.json?{dates}").get_json()
    assert before["totals"]["visits"] > 0
    arrived: list[tuple[str, str, str]] = []
    for link in made:
        with app.app_context():
            record(link, site_id)
        arrived.append(link)
        step = rng.random()
        if step < 0.3 and waiting:  # events of a linked browser arrive meanwhile
            with app.app_context():
                store(site_id, waiting[:5], in_force(arrived))
            waiting = waiting[5:]
        elif step < 0.7:
            with app.app_context():
                identity.apply_pending(db.session(), utcnow() + identity.LINK_GRACE)
        if rng.random() < 0.4:
            derive_all(app)
    with app.app_context():
        store(site_id, waiting, in_force(arrived))
        identity.apply_pending(db.session(), utcnow() + identity.LINK_GRACE)
        assert identity.pending_links(db.session()) == 0
    linked = in_force(made)
    kept = [
        replace(e.sent, visitor=person(e, linked), browser=e.browser is not None) for e in events
    ]
    assert {e.visitor for e in kept} & {f"u:{user}" for user in linked.values()}
    assert_as_from_scratch(app, client, site_id, "America/New_York", kept, date(2026, 3, 8))
