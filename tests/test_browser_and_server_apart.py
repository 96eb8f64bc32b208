"""A browser cannot touch what a backend sends: event ids and success rule names.

Anyone can send browser events (the site key is public, the Origin header can be forged),
so a browser's event_id lives in its own space (it can never make a server event a
duplicate), and the rule names browsers register have their own cap (they never use up the
server's). Names sent only with test keys are listed in no report.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from datalook import erasure
from datalook.extensions import db
from datalook.ingest import storage
from datalook.keys import apikeys
from datalook.models import Event, Site, SuccessRule, utcnow
from datalook.web import quest_funnel
from tests.conftest import _make_app, add_site, sign_up
from tests.factories import bearer, make_key, make_site, make_user, stored_events
from tests.test_postgres import pg_app  # noqa: F401 - a fixture, used by name

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PAID = {"event_name": "success", "name": "paid", "page_path": "/checkout/success"}


@dataclass(frozen=True)
class Senders:
    """A site with its public site key, a live and a test token, and a client to send with."""

    app: Flask
    site_id: int
    site_key: str
    origin: str
    live: dict[str, str]
    test: dict[str, str]

    def browser(self, body: dict, address: str = "203.0.113.7"):
        """POST /collect as anyone can: the public key and a forged Origin."""
        return self.app.test_client().post(
            f"/collect?site={self.site_key}",
            data=json.dumps(body),
            headers={"Origin": self.origin, "User-Agent": CHROME},
            content_type="text/plain;charset=UTF-8",
            environ_base={"REMOTE_ADDR": address},
        )

    def server(self, body: dict, test: bool = False):
        """POST /event with the live (or the test) key."""
        headers = self.test if test else self.live
        return self.app.test_client().post("/event", json=body, headers=headers)

    def batch(self, events: list[dict]):
        """POST /events with the live key."""
        return self.app.test_client().post("/events", json={"events": events}, headers=self.live)

    def origins(self) -> dict[str, str]:
        """The site's registered rule names and who registered them."""
        with self.app.app_context():
            rows = db.session.execute(
                select(SuccessRule.name, SuccessRule.origin).where(
                    SuccessRule.site_id == self.site_id
                )
            )
            return {name: origin for name, origin in rows}


def _senders(app: Flask, site: Site) -> Senders:
    """Keys for `site` (inside an app context): a live one (limit raised) and a test one."""
    live = make_key(site, rate_limit="100000 per 10 seconds")
    test = apikeys.create_key(site, "Test key", None, kind="test")
    apikeys.set_limit(test.key, "100000 per 10 seconds")
    return Senders(
        app,
        site.id,
        site.site_key or "",
        f"https://{site.domain}",
        bearer(live.token),
        bearer(test.token),
    )


@pytest.fixture
def senders(app, client) -> Senders:
    """The logged-in owner's site (example.com) and its senders."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        return _senders(app, db.session.get(Site, site_id))


def _stored(response, duplicate: bool = False) -> None:
    """A 204 that stored the event (or, with duplicate, recognised it as one)."""
    assert response.status_code == 204, response.get_data(as_text=True)[:500]
    assert response.headers.get("DataLook-Duplicate") == ("true" if duplicate else None)


def _paid_conversions(client, site_id: int) -> int:
    """Today's conversions of the rule "paid" in stats.json."""
    body = client.get(f"/sites/{site_id}/stats.json?period=today").get_json()
    return sum(rule["conversions"] for rule in body["rules"] if rule["name"] == "paid")


# --- 5. event ids: a browser's never make a server event a duplicate --------------------------


def _ids_are_apart(senders: Senders) -> None:
    """Both orders, retries on each side, the batch endpoint."""
    # A forged browser event takes the order's id first: the backend's is still stored.
    _stored(senders.browser({"event_name": "custom", "page_path": "/", "event_id": "order-1"}))
    _stored(senders.server({**PAID, "event_id": "order-1", "success_value": 10}))
    _stored(senders.server({**PAID, "event_id": "order-1"}), duplicate=True)  # a server retry
    # The other way round: the backend first, then a browser with the same id.
    _stored(senders.server({**PAID, "event_id": "order-2", "success_value": 20}))
    _stored(senders.browser({**PAID, "event_id": "order-2"}))
    _stored(senders.browser({**PAID, "event_id": "order-2"}), duplicate=True)  # a browser retry
    # A test key's events are server events: a browser cannot pre-empt them either.
    _stored(senders.browser({"event_name": "custom", "page_path": "/", "event_id": "t-1"}))
    _stored(senders.server({**PAID, "event_id": "t-1"}, test=True))
    # The batch endpoint shares the server's space, never the browser's.
    _stored(senders.browser({"event_name": "custom", "page_path": "/", "event_id": "order-3"}))
    answer = senders.batch([{**PAID, "event_id": "order-3"}, {**PAID, "event_id": "order-1"}])
    assert answer.status_code == 200
    assert (answer.get_json()["accepted"], answer.get_json()["duplicates"]) == (1, 1)
    events = stored_events(senders.app, senders.site_id)
    server = [e["event_id"] for e in events if e["key_id"] is not None and not e["test"]]
    browser = [e["event_id"] for e in events if e["key_id"] is None]
    assert sorted(server) == ["order-1", "order-2", "order-3"]
    assert sorted(browser) == ["order-1", "order-2", "order-3", "t-1"]
    order_1 = next(e for e in events if e["event_id"] == "order-1" and e["key_id"] is not None)
    assert order_1["success_value"] == 10  # the backend's own event, unaltered


def test_a_browser_event_id_never_makes_a_server_event_a_duplicate(client, senders):
    _ids_are_apart(senders)
    # Counted: the backend's two orders and the batch's one, and the browser's own "paid".
    assert _paid_conversions(client, senders.site_id) == 4


def test_event_ids_are_apart_on_postgresql(pg_app):  # noqa: F811 - the imported fixture
    with pg_app.app_context():
        _ids_are_apart(_senders(pg_app, make_site(make_user(), "pg.example")))


# --- 6. rule names: browsers have their own cap, test-only names are listed nowhere -----------


def _refused_for(response, code: str) -> str:
    """The message of a 400 that refuses the event's rule `name` with `code`."""
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    (error,) = response.get_json()["error"]["errors"]
    assert (error["field"], error["code"]) == ("name", code)
    return error["message"]


def test_names_from_browsers_never_use_up_the_servers_cap(senders, monkeypatch):
    monkeypatch.setattr(storage, "MAX_RULES_PER_SITE", 5)
    for n in range(6):  # more new names from browsers than the server may have
        _stored(senders.browser({**PAID, "name": f"junk-{n}"}))
    _stored(senders.server({**PAID, "name": "paid-customer"}))


def test_the_caps_are_100_browser_and_1000_server_names():
    assert (storage.MAX_BROWSER_RULES_PER_SITE, storage.MAX_RULES_PER_SITE) == (100, 1000)


def test_browsers_filling_their_cap_never_lock_the_backend_out(senders):
    # 101 new names from browsers, as anyone with the public key can send them.
    for n in range(storage.MAX_BROWSER_RULES_PER_SITE):
        _stored(senders.browser({**PAID, "name": f"junk-{n}"}, address=f"198.51.100.{n}"))
    over = senders.browser({**PAID, "name": "junk-over"}, address="198.51.100.200")
    message = _refused_for(over, "too_many_browser_rules")
    assert "100" in message and "browser" in message
    assert over.headers["Access-Control-Allow-Origin"] == senders.origin  # the page may read it
    _stored(senders.browser({**PAID, "name": "junk-7"}, address="198.51.100.201"))  # known: fine
    # The backend's new rule is accepted.
    _stored(senders.server({**PAID, "name": "paid-customer"}))
    origins = senders.origins()
    assert origins["paid-customer"] == "server"
    assert list(origins.values()).count("browser") == storage.MAX_BROWSER_RULES_PER_SITE


def test_the_server_cap_is_enforced_as_before_and_counts_no_browser_or_test_name(
    senders, monkeypatch
):
    monkeypatch.setattr(storage, "MAX_RULES_PER_SITE", 3)
    monkeypatch.setattr(storage, "MAX_BROWSER_RULES_PER_SITE", 2)
    for name in ("b-1", "b-2"):
        _stored(senders.browser({**PAID, "name": name}))
    for name in ("t-1", "t-2", "t-3", "t-4"):
        _stored(senders.server({**PAID, "name": name}, test=True))
    for name in ("s-1", "s-2", "s-3"):
        _stored(senders.server({**PAID, "name": name}))
    message = _refused_for(senders.server({**PAID, "name": "s-4"}), "too_many_rules")
    assert "3 success rules" in message
    batch = senders.batch([{**PAID, "name": "s-1"}, {**PAID, "name": "s-5"}])
    assert batch.get_json()["accepted"] == 1
    assert [(e["index"], e["code"]) for e in batch.get_json()["errors"]] == [(1, "too_many_rules")]
    _refused_for(senders.browser({**PAID, "name": "b-3"}), "too_many_browser_rules")
    # Every registered name is still accepted from every sender.
    for name in ("b-1", "s-2"):
        _stored(senders.browser({**PAID, "name": name}))
        _stored(senders.server({**PAID, "name": name}, test=True))
    _stored(senders.server({**PAID, "name": "t-1"}, test=True))


def _names_change_hands(senders: Senders, monkeypatch) -> None:
    """Browser-first names taken over by the backend, within its cap and past it."""
    monkeypatch.setattr(storage, "MAX_RULES_PER_SITE", 2)
    monkeypatch.setattr(storage, "MAX_BROWSER_RULES_PER_SITE", 2)
    _stored(senders.browser({**PAID, "name": "signup"}))
    _stored(senders.browser({**PAID, "name": "trial"}))
    _refused_for(senders.browser({**PAID, "name": "other"}), "too_many_browser_rules")
    # The backend's event is accepted; the name is the server's now, within its cap ...
    _stored(senders.server({**PAID, "name": "signup"}))
    assert senders.origins() == {"signup": "server", "trial": "browser"}
    # ... which frees the browsers' slot.
    _stored(senders.browser({**PAID, "name": "other"}))
    _stored(senders.server({**PAID, "name": "paid"}))  # the server's 2nd and last name
    _refused_for(senders.server({**PAID, "name": "new"}), "too_many_rules")
    # With the server's cap full, a browser-first name is still accepted from the backend
    # (it stays a browser name: the browsers' cap bounds it).
    _stored(senders.server({**PAID, "name": "trial"}))
    _stored(senders.server({**PAID, "name": "trial"}))
    assert senders.origins() == {
        "signup": "server",
        "trial": "browser",
        "other": "browser",
        "paid": "server",
    }


def test_a_server_event_with_a_browser_first_name_is_accepted_and_counts_as_the_servers(
    senders, monkeypatch
):
    _names_change_hands(senders, monkeypatch)


def _test_names_become_live(senders: Senders) -> None:
    """A test-only name taken over by a live event: from the backend, from a browser."""
    for name in ("rehearsal", "dry-run"):
        _stored(senders.server({**PAID, "name": name}, test=True))
    assert senders.origins() == {"rehearsal": "test", "dry-run": "test"}
    _stored(senders.server({**PAID, "name": "rehearsal"}))
    _stored(senders.browser({**PAID, "name": "dry-run"}))
    assert senders.origins() == {"rehearsal": "server", "dry-run": "browser"}


def test_rule_names_change_hands_on_postgresql(pg_app, monkeypatch):  # noqa: F811
    with pg_app.app_context():
        _names_change_hands(_senders(pg_app, make_site(make_user(), "pg.example")), monkeypatch)
        _test_names_become_live(_senders(pg_app, make_site(make_user(), "pg2.example")))


def _listed(client, site_id: int, name: str) -> list[bool]:
    """Whether a rule is listed in stats.json, in rules.csv and on the dashboard."""
    body = client.get(f"/sites/{site_id}/stats.json?period=today").get_json()
    rules = client.get(f"/sites/{site_id}/reports/rules.csv?period=today").get_data(as_text=True)
    page = client.get(f"/sites/{site_id}/?period=today").get_data(as_text=True)
    goals = page[page.index('data-panel="goals"') :]
    goals = goals[: goals.index("</section>")]
    return [
        name in [rule["name"] for rule in body["rules"]],
        name in [row[0] for row in csv.reader(io.StringIO(rules))],
        f'data-value="{name}"' in goals,
    ]


def test_a_name_sent_only_with_a_test_key_is_listed_in_no_report(client, senders):
    _stored(senders.server({**PAID, "name": "paid"}))
    _stored(senders.server({**PAID, "name": "rehearsal"}, test=True))
    assert _listed(client, senders.site_id, "paid") == [True, True, True]
    assert _listed(client, senders.site_id, "rehearsal") == [False, False, False]
    with senders.app.app_context():  # nor suggested for a first funnel
        assert quest_funnel.rule_names(db.session, senders.site_id) == ["paid"]
    # A live event makes it a rule like any other, from the backend or from a browser.
    _stored(senders.server({**PAID, "name": "rehearsal"}))
    assert _listed(client, senders.site_id, "rehearsal") == [True, True, True]
    _stored(senders.server({**PAID, "name": "dry-run"}, test=True))
    _stored(senders.browser({**PAID, "name": "dry-run"}))
    assert _listed(client, senders.site_id, "dry-run") == [True, True, True]
    assert senders.origins() == {"paid": "server", "rehearsal": "server", "dry-run": "browser"}


def test_test_only_names_have_their_own_cap_and_go_with_the_test_events(
    app, client, senders, monkeypatch
):
    monkeypatch.setattr(storage, "MAX_RULES_PER_SITE", 1)
    monkeypatch.setattr(storage, "MAX_TEST_RULES_PER_SITE", 2)
    for name in ("t-1", "t-2"):
        _stored(senders.server({**PAID, "name": name}, test=True))
    message = _refused_for(senders.server({**PAID, "name": "t-3"}, test=True), "too_many_rules")
    assert "test" in message
    _stored(senders.server({**PAID, "name": "live"}))  # test names never lock live ones out
    _refused_for(senders.server({**PAID, "name": "t-1"}), "too_many_rules")  # live cap: full
    with app.app_context():
        erasure.clear_test_events(db.session.get(Site, senders.site_id), "owner@example.com")
    assert senders.origins() == {"live": "server"}
    _stored(senders.server({**PAID, "name": "t-3"}, test=True))


# --- the migration ---------------------------------------------------------------------------

_OLD_EVENT = (
    "INSERT INTO events (site_id, api_key_id, event_name, name, page_path, visitor_id,"
    " event_id, occurred_at, received_at, is_test)"
    " VALUES (1, :key, :kind, :name, '/', 'a:1', :event_id, :at, :at, :test)"
)


def _event_ids(app: Flask) -> list[tuple]:
    """(event_id, api_key_id) of every stored event, in order."""
    with app.app_context():
        rows = db.session.execute(text("SELECT event_id, api_key_id FROM events ORDER BY id"))
        return [tuple(row) for row in rows]


def _migrates_existing_events_and_rules(app: Flask) -> None:
    """From 0015 (empty) to the head and back, with events of every sender."""
    at = utcnow()
    with app.app_context():
        for statement in (
            "INSERT INTO users (email, password_hash, created_at) VALUES ('a@b.c', 'x', :at)",
            "INSERT INTO sites (owner_id, domain, created_at, key_serial)"
            " VALUES (1, 'o.c', :at, 0)",
            "INSERT INTO api_keys (site_id, key_id, name, secret_hash, created_at, kind)"
            " VALUES (1, 'live1', 'live', 'h', :at, 'live'),"
            " (1, 'test1', 'test', 'h', :at, 'test')",
        ):
            db.session.execute(text(statement), {"at": at})
        events = [
            (None, "custom", None, "shared", False),  # a browser's id, later a server's too
            (1, "success", "paid", "order-1", False),
            (None, "success", "paid", None, False),
            (None, "success", "signup", None, False),
            (2, "success", "signup", None, True),
            (2, "success", "rehearsal", None, True),
        ]
        for key, kind, name, event_id, test in events:
            values = {"key": key, "kind": kind, "name": name, "event_id": event_id, "test": test}
            db.session.execute(text(_OLD_EVENT), {**values, "at": at})
        for name in ("paid", "signup", "rehearsal", "gone"):  # "gone": its events were deleted
            db.session.execute(
                text(
                    "INSERT INTO success_rules (site_id, name, first_seen_at) VALUES (1, :n, :at)"
                ),
                {"n": name, "at": at},
            )
        db.session.commit()
        upgrade()
        browser = db.session.scalars(select(Event.from_browser).order_by(Event.id)).all()
        assert browser == [True, False, True, True, False, False]
        origins = dict(db.session.execute(select(SuccessRule.name, SuccessRule.origin)).all())
        assert origins == {
            "paid": "server",
            "signup": "browser",
            "rehearsal": "test",
            "gone": "server",
        }
        # A server event may now carry the browser's id ...
        shared = {"key": 1, "kind": "custom", "name": None, "event_id": "shared", "test": False}
        db.session.execute(text(_OLD_EVENT), {**shared, "at": at})
        db.session.commit()
        # ... and back in one space, the browser's event keeps all but that id.
        downgrade(revision="0015")
        db.session.remove()
    assert _event_ids(app) == [
        (None, None),
        ("order-1", 1),
        (None, None),
        (None, None),
        (None, 2),
        (None, 2),
        ("shared", 1),
    ]
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()


def test_the_migration_keeps_existing_events_and_rules_apart(tmp_path):
    app = _make_app(tmp_path / "old")
    with app.app_context():
        upgrade(revision="0015")
    _migrates_existing_events_and_rules(app)


def test_the_migration_on_postgresql(pg_app):  # noqa: F811 - the imported fixture
    with pg_app.app_context():
        downgrade(revision="0015")
    _migrates_existing_events_and_rules(pg_app)
    with pg_app.app_context(), db.engine.connect() as connection:
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_events_site_event_id'")
        ).scalar_one()
    assert "(site_id, event_id, from_browser)" in definition
    assert "WHERE (event_id IS NOT NULL)" in definition
