"""The funnel builder: what each step asks for, what it refuses, and what it suggests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select, text

from datalook.analytics import kinds
from datalook.analytics.funnels import repository
from datalook.analytics.funnels.definition import parse_definition
from datalook.analytics.funnels.models import Funnel
from datalook.analytics.rollups import fold
from datalook.extensions import db
from datalook.models import Event
from datalook.sql.connections import add_unique
from tests.conftest import add_site, csrf_from, sign_up
from tests.funnel_data import E, store
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

KIND_FIELDS = ("page_path", "rule_name", "custom_name", "property_key", "property_value")


def builder_form(client, url: str, name: str, steps: list[dict]) -> dict:
    """The builder's fields as a browser posts them: every input of every step."""
    page = client.get(url).get_data(as_text=True)
    form: dict = {"csrf_token": csrf_from(page), "name": name, "window": "24h", "mode": "ordered"}
    form["event_name"] = [s.get("event_name", "") for s in steps]
    for field in KIND_FIELDS:
        form[field] = [s.get(field, "") for s in steps]
    return form


def funnel_count(app, site_id: int) -> int:
    """How many funnels the site has."""
    with app.app_context():
        return db.session.scalar(select(func.count()).where(Funnel.site_id == site_id))


@pytest.fixture
def site(client):
    """A logged-in owner's site."""
    sign_up(client)
    return add_site(client)


HOME = {"event_name": "pageview", "page_path": "/"}
PAID = {"event_name": "success", "rule_name": "paid"}

# (case, steps, the message the page shows); nothing is saved for any of them.
REFUSED_FORMS = [
    (
        "page view without a page",
        [HOME, {"event_name": "pageview"}],
        "Step 2: give the page path, e.g. /pricing (/* for any page).",
    ),
    (
        "click without a page",
        [{"event_name": "click", "rule_name": "ignored"}, PAID],
        "Step 1: give the page path",
    ),
    ("success without a rule", [HOME, {"event_name": "success"}], "Step 2: give the success rule"),
    (
        "custom event without a name",
        [HOME, {"event_name": "custom", "page_path": "/"}],
        "Step 2: give the custom event",
    ),
    ("no kind chosen", [HOME, {"event_name": ""}], "Step 2: choose what happens"),
    ("an unknown kind", [HOME, {"event_name": "purchase"}], "Step 2: choose what happens"),
    (
        "a property value without its name",
        [HOME, {**PAID, "property_value": "pro"}],
        "Step 2: name the property",
    ),
    ("one step", [HOME], "a funnel has 2 to 8 steps"),
    ("a path without a slash", [HOME, {"event_name": "pageview", "page_path": "pricing"}], "/"),
]


@pytest.mark.parametrize(
    ("steps", "message"), [r[1:] for r in REFUSED_FORMS], ids=[r[0] for r in REFUSED_FORMS]
)
def test_the_builder_refuses_an_incomplete_step_on_the_form(client, app, site, steps, message):
    form = builder_form(client, f"/sites/{site}/funnels/new", "Checkout", steps)
    response = client.post(f"/sites/{site}/funnels/", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="funnel-error"' in page and 'data-field="step"' in page
    assert message.replace("“", "&#34;") in page or message in page
    assert funnel_count(app, site) == 0


def test_a_step_reads_only_the_input_of_its_kind(client, app, site):
    """Hidden inputs of other kinds (filled, then the kind changed) are not saved."""
    steps = [
        {**HOME, "rule_name": "stale", "custom_name": "stale"},
        {"event_name": "custom", "custom_name": "signed-up", "page_path": "/stale"},
        {**PAID, "page_path": "/stale", "property_key": "plan", "property_value": "pro"},
    ]
    form = builder_form(client, f"/sites/{site}/funnels/new", "Checkout", steps)
    assert client.post(f"/sites/{site}/funnels/", data=form).status_code == 302
    with app.app_context():
        saved = json.loads(db.session.scalar(select(Funnel.definition)))
    assert saved["steps"] == [
        {"event_name": "pageview", "page_path": "/", "name": None, "property": None},
        {"event_name": "custom", "page_path": None, "name": "signed-up", "property": None},
        {
            "event_name": "success",
            "page_path": None,
            "name": "paid",
            "property": {"key": "plan", "value": "pro"},
        },
    ]


# (case, the name tried second, saved?)
NAMES = [
    ("the same name", "Checkout", False),
    ("another case", "CHECKOUT", False),
    ("surrounding blanks", "  checkout ", False),
    ("another name", "Checkout 2", True),
]


@pytest.mark.parametrize(("second", "saved"), [n[1:] for n in NAMES], ids=[n[0] for n in NAMES])
def test_a_name_is_one_funnel_of_the_site_on_create_and_rename(client, app, site, second, saved):
    steps = [HOME, PAID]
    first = builder_form(client, f"/sites/{site}/funnels/new", "Checkout", steps)
    assert client.post(f"/sites/{site}/funnels/", data=first).status_code == 302
    form = builder_form(client, f"/sites/{site}/funnels/new", second, steps)
    created = client.post(f"/sites/{site}/funnels/", data=form)
    assert created.status_code == (302 if saved else 400)
    if not saved:
        assert "has a funnel named" in created.get_data(as_text=True)
    assert funnel_count(app, site) == (2 if saved else 1)

    # Renaming another funnel to the name: the same answer; keeping its own name is fine.
    other = builder_form(client, f"/sites/{site}/funnels/new", "Other", steps)
    location = client.post(f"/sites/{site}/funnels/", data=other).headers["Location"]
    other_id = int(location.rstrip("/").split("/")[-1])
    edit_url = f"/sites/{site}/funnels/{other_id}/edit"
    # (either "Checkout" or "Checkout 2" is taken by now)
    rename = builder_form(client, edit_url, second, steps)
    renamed = client.post(edit_url, data=rename)
    assert renamed.status_code == 400
    assert "has a funnel named" in renamed.get_data(as_text=True)
    keep = builder_form(client, edit_url, "OTHER", steps)
    assert client.post(edit_url, data=keep).status_code == 302


def test_another_sites_funnel_may_share_the_name(client, app, site):
    steps = [HOME, PAID]
    form = builder_form(client, f"/sites/{site}/funnels/new", "Checkout", steps)
    assert client.post(f"/sites/{site}/funnels/", data=form).status_code == 302
    second_site = add_site(client, "second.example.com")
    form = builder_form(client, f"/sites/{second_site}/funnels/new", "Checkout", steps)
    assert client.post(f"/sites/{second_site}/funnels/", data=form).status_code == 302


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_saves_racing_for_a_name_leave_one_funnel(request, database):
    """The unique index decides when the check before the write could not see the other."""
    app = request.getfixturevalue("app" if database == "sqlite" else "pg_app")
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    definition = parse_definition([HOME, {"event_name": "success", "name": "paid"}], "24h", "")
    with app.app_context():
        repository.save(db.session, site_id, "Checkout", definition)
        # Another process's row, written after this one looked: only the index sees it.
        assert not add_unique(db.session, Funnel(site_id=site_id, name="CHECKOUT", definition=""))
        original = repository.name_taken
        repository.name_taken = lambda *args, **kwargs: False  # as if it raced past the check
        try:
            with pytest.raises(repository.DuplicateName):
                repository.save(db.session, site_id, "checkout", definition)
        finally:
            repository.name_taken = original
        assert db.session.scalar(select(func.count()).select_from(Funnel)) == 1


BLANK_JSON_STEPS = [
    ("empty text", ""),
    ("blanks", "   "),
    ("an empty object", "{}"),
    ("an empty event name", '{"event_name": ""}'),
    ("only nulls", '{"event_name": null, "page_path": null, "name": null, "property": null}'),
    ("blank values", '{"event_name": " ", "page_path": ""}'),
]


@pytest.mark.parametrize(
    "raw", [b[1] for b in BLANK_JSON_STEPS], ids=[b[0] for b in BLANK_JSON_STEPS]
)
def test_the_json_api_refuses_a_blank_step_naming_it(client, site, raw):
    args = [("step", '{"event_name": "pageview", "page_path": "/"}'), ("step", raw)]
    response = client.get(f"/sites/{site}/funnel.json?{urlencode(args)}")
    assert response.status_code == 400
    error = response.get_json()["error"]["errors"][0]
    assert error["field"] == "step"
    assert error["code"] == "blank_step"
    assert error["message"].startswith("step 2 is blank")


# Not blank: refused for what they say, as before.
MALFORMED_JSON_STEPS = [
    ("not an object", "[1]", "malformed_step"),
    ("not JSON", "{pageview", "malformed_step"),
    ("an unknown event name", '{"event_name": "purchase"}', "unknown_event_name"),
    ("a path without a slash", '{"event_name": "pageview", "page_path": "x"}', "invalid_page_path"),
]


@pytest.mark.parametrize(
    ("raw", "code"), [m[1:] for m in MALFORMED_JSON_STEPS], ids=[m[0] for m in MALFORMED_JSON_STEPS]
)
def test_the_json_api_names_a_malformed_step(client, site, raw, code):
    args = [("step", '{"event_name": "pageview", "page_path": "/"}'), ("step", raw)]
    response = client.get(f"/sites/{site}/funnel.json?{urlencode(args)}")
    assert response.status_code == 400
    assert response.get_json()["error"]["errors"][0]["code"] == code


def test_the_builder_suggests_the_sites_own_paths_rules_and_keys(client, app, site):
    now = datetime.utcnow().replace(microsecond=0) - timedelta(hours=1)
    store(
        app,
        site,
        [
            E("u:1", now, path="/pricing"),
            E("u:1", now, "click", "/docs/start"),
            E("u:1", now, "success", "/thanks", "paid-customer", 5_000_000, {"plan": "pro"}),
            E("u:2", now, "custom", "/app", "exported-report"),
        ],
    )
    with app.app_context():  # as the fold process keeps them
        kinds.catch_up(db.session)
        fold.catch_up(db.engine, app.instance_path)
    page = client.get(f"/sites/{site}/funnels/new").get_data(as_text=True)

    def options(list_id: str) -> list[str]:
        start = page.index(f'<datalist id="{list_id}">')
        block = page[start : page.index("</datalist>", start)]
        return [part.split('"')[0] for part in block.split('<option value="')[1:]]

    assert options("funnel-paths") == ["/docs/start", "/pricing"]
    assert options("funnel-rules") == ["paid-customer"]
    assert options("funnel-customs") == ["exported-report"]
    assert options("funnel-property-keys") == ["plan"]
    # Every input names its list; the kinds are the four "what happens" choices.
    assert 'list="funnel-paths"' in page and 'list="funnel-property-keys"' in page
    for label in ("Page view of…", "Click on…", "Success…", "Custom event…"):
        assert label in page


def test_the_suggestion_follows_the_commonest_journey_not_the_busiest_pages(client, app, site):
    """Many one-page visits make /blog and /docs the busiest pages; the commonest journey of
    two pages or more is / → /pricing → /signup."""
    start = datetime.utcnow().replace(microsecond=0) - timedelta(days=2)
    events: list[E] = []
    for n in range(30):  # busy single pages
        events.append(E(f"u:blog{n}", start + timedelta(minutes=n), path="/blog"))
        events.append(E(f"u:docs{n}", start + timedelta(minutes=n), path="/docs"))
        events.append(E(f"u:docs{n}", start + timedelta(minutes=n, seconds=5), path="/docs"))
    for n in range(6):  # the commonest journey
        at = start + timedelta(hours=2, minutes=n)
        for k, path in enumerate(["/", "/pricing", "/signup"]):
            events.append(E(f"u:j{n}", at + timedelta(seconds=k), path=path))
    for n in range(3):  # a rarer one
        at = start + timedelta(hours=3, minutes=n)
        for k, path in enumerate(["/docs", "/pricing"]):
            events.append(E(f"u:k{n}", at + timedelta(seconds=k), path=path))
    events.append(E("u:j0", start + timedelta(hours=4), "success", "/thanks", "paid", 1))
    store(app, site, events)
    with app.app_context():
        busiest = db.session.execute(
            select(Event.page_path, func.count())
            .where(Event.site_id == site, Event.event_name == "pageview")
            .group_by(Event.page_path)
            .order_by(func.count().desc())
        ).all()
    assert [p for p, _ in busiest[:2]] == ["/docs", "/blog"]  # the data says what it should

    page = client.get(f"/sites/{site}/funnels/new?suggested=1").get_data(as_text=True)
    paths = [
        part.split('"')[0]
        for part in page.split('name="page_path" data-field="page_path"')[1:]
        for part in [part.split('value="', 1)[1]]
    ]
    assert paths[:3] == ["/", "/pricing", "/signup"]
    assert paths[3:] == [""]  # the empty template row: the journey's three pages only


def test_the_migration_renames_names_shared_before_the_index(client, app, site):
    """Funnels saved before names were unique keep their own names but the first's."""
    with app.app_context():
        db.session.remove()
        downgrade(revision="0018")
        for name in ("Checkout", "checkout", "CHECKOUT", "Checkout (2)", "Other"):
            db.session.execute(
                text(
                    "INSERT INTO funnels (site_id, name, definition, created_at, updated_at)"
                    " VALUES (:s, :n, '{}', :t, :t)"
                ),
                {"s": site, "n": name, "t": datetime(2026, 1, 1)},
            )
        db.session.commit()
        db.session.remove()
        upgrade()
        names = db.session.scalars(select(Funnel.name).order_by(Funnel.id)).all()
    assert names == ["Checkout", "checkout (3)", "CHECKOUT (4)", "Checkout (2)", "Other"]
