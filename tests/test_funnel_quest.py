"""The "Build your first funnel" quest: suggestions from the site's data, done once saved."""

from __future__ import annotations

from datetime import datetime, timedelta

from datalook.extensions import db
from datalook.models import SuccessRule
from datalook.web.quest_funnel import suggested_steps
from tests.funnel_data import E, store
from tests.test_funnels_api import STEPS, save_funnel

NOW = datetime(2026, 3, 10, 12, 0)


def test_quest_suggests_the_sites_own_paths_and_rules_and_completes_on_save(client, app, owner):
    events = [E(f"u:{n}", NOW + timedelta(seconds=n), path="/features") for n in range(5)]
    events += [E(f"u:{n}", NOW + timedelta(seconds=n), path="/") for n in range(3)]
    events += [E("u:1", NOW, path="/blog")]
    store(app, owner, events)
    with app.app_context():
        db.session.add(SuccessRule(site_id=owner, name="paid-customer", first_seen_at=NOW))
        db.session.commit()
        steps = suggested_steps(db.session, owner)
    assert steps == [
        {"event_name": "pageview", "page_path": "/"},
        {"event_name": "pageview", "page_path": "/features"},
        {"event_name": "pageview", "page_path": "/blog"},
        {"event_name": "success", "name": "paid-customer"},
    ]
    quests = client.get(f"/sites/{owner}/quests/").get_data(as_text=True)
    assert f'href="/sites/{owner}/quests/funnel">Build your first funnel' in quests
    page = client.get(f"/sites/{owner}/quests/funnel").get_data(as_text=True)
    assert "<code>/features</code>" in page and "paid-customer" in page
    assert "Quest complete" not in page
    builder = client.get(f"/sites/{owner}/funnels/new?suggested=1").get_data(as_text=True)
    assert 'value="/features"' in builder and 'value="paid-customer"' in builder

    save_funnel(client, owner, "First", STEPS)
    assert "Quest complete" in client.get(f"/sites/{owner}/quests/funnel").get_data(as_text=True)


def test_quest_on_an_empty_site_still_offers_a_builder(client, owner):
    page = client.get(f"/sites/{owner}/quests/funnel")
    assert page.status_code == 200
    assert "Once your site sends page views" in page.get_data(as_text=True)
    builder = client.get(f"/sites/{owner}/funnels/new?suggested=1").get_data(as_text=True)
    assert builder.count("data-step>") == 3  # two steps, and the template of an added one


def test_catch_up_command_derives_ahead_of_the_reports(client, app, owner):
    save_funnel(client, owner, "First", STEPS)
    store(app, owner, [E("u:1", NOW), E("u:1", NOW + timedelta(minutes=1), path="/pricing")])
    result = app.test_cli_runner().invoke(args=["funnels", "catch-up"])
    assert result.exit_code == 0, result.output
    assert "sessions: 2 events" in result.output and "funnel 1: 2 events" in result.output
    again = app.test_cli_runner().invoke(args=["funnels", "catch-up"])
    assert "sessions: 0 events" in again.output
