"""The live view, refused requests, test keys and erasure on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select, text

from datalook import erasure
from datalook.accounts import audit
from datalook.extensions import db
from datalook.ingest import refusals
from datalook.ingest.refusals import recorder_for
from datalook.keys import apikeys, tokens
from datalook.models import AuditEntry, RefusedRequest, Site
from tests import raw_figures as stats
from tests.conftest import add_site, sign_up
from tests.factories import Made, bearer, stored_events
from tests.test_postgres import pg_app  # noqa: F401 - the PostgreSQL app fixture

GOOD = {
    "event_name": "success",
    "name": "paid-customer",
    "page_path": "/checkout/success",
    "success_value": 9.99,
    "success_user_id": "user_42",
    "properties": {"plan": "starter", "email": "a@b.c"},
}

# The audit log's entries of deletions (it also records sites' creation, keys, sign-ins).
DELETIONS = AuditEntry.action.in_(audit.LONG_KEPT)


def _keys(app, site_id: int) -> tuple[Made, Made]:
    """A live and a test key on the site."""
    with app.app_context():
        site = db.session.get(Site, site_id)
        live_key = apikeys.create_key(site, "Prod", None)
        test_key = apikeys.create_key(site, "Try", None, kind="test")
        return tuple(  # type: ignore[return-value]
            Made(site.owner_id, site_id, c.key.id, c.key.key_id, c.token, site.domain)
            for c in (live_key, test_key)
        )


def test_live_test_keys_refusals_and_erasure_on_postgresql(pg_app):  # noqa: F811
    client = pg_app.test_client()
    sign_up(client)
    site_id = add_site(client)
    live_key, test_key = _keys(pg_app, site_id)
    assert test_key.token.startswith("dl_test_")
    for user in ("user_42", "user_42", "other"):
        sent = client.post(
            "/event", json={**GOOD, "success_user_id": user}, headers=bearer(live_key.token)
        )
        assert sent.status_code == 204
    tried = {**GOOD, "success_user_id": "tester"}
    assert client.post("/event", json=tried, headers=bearer(test_key.token)).status_code == 204
    # Refusals: a bad body, a wrong secret for a real key id, the wrong content type.
    bad = client.post(
        "/event", json={**GOOD, "success_value": "9.99"}, headers=bearer(live_key.token)
    )
    assert bad.status_code == 400
    wrong = tokens.generate(key_id=live_key.key_id).token
    assert client.post("/event", json=GOOD, headers=bearer(wrong)).status_code == 401
    plain = client.post(
        "/event", data="x", headers={**bearer(test_key.token), "Content-Type": "text/plain"}
    )
    assert plain.status_code == 415

    feed = client.get(f"/sites/{site_id}/live.json").get_json()
    kinds = [(item["kind"], item["test"]) for item in feed["items"]]
    assert kinds == [
        ("refused", True),
        ("refused", False),
        ("refused", False),
        ("event", True),
        ("event", False),
        ("event", False),
        ("event", False),
    ]
    assert [i["status"] for i in feed["items"][:3]] == [415, 401, 400]
    assert feed["items"][2]["errors"][0]["field"] == "success_value"
    later = client.get(f"/sites/{site_id}/live.json", query_string={"after": feed["cursor"]})
    assert later.get_json()["items"] == []

    with pg_app.app_context():
        figures = stats.overview(site_id)
        assert (figures.events, figures.visitors, figures.conversions) == (3, 2, 3)
        # The secrets appear in no table, in any column.
        dump = db.session.execute(
            text(
                "SELECT string_agg(t::text, ' ') FROM ("
                " SELECT row_to_json(r)::text AS t FROM refused_requests r"
                " UNION ALL SELECT row_to_json(e)::text FROM events e"
                " UNION ALL SELECT row_to_json(k)::text FROM api_keys k) AS rows"
            )
        ).scalar_one()
        for token in (live_key.token, test_key.token, wrong):
            assert token[-tokens.SECRET_LENGTH :] not in dump
        assert live_key.key_id in dump

        site = db.session.get(Site, site_id)
        assert erasure.erase_visitor(site, "user_42", "ops@example.com") == 2
        assert erasure.clear_test_events(site, "ops@example.com") == 1
        figures = stats.overview(site_id)
        assert (figures.events, figures.visitors) == (1, 1)
        actions = db.session.execute(
            select(AuditEntry.action, AuditEntry.events_deleted)
            .where(DELETIONS)
            .order_by(AuditEntry.id)
        ).all()
        assert [tuple(a) for a in actions] == [("erase_visitor", 2), ("clear_test", 1)]
        assert all(
            "user_42" not in (r.excerpt or "")
            for r in db.session.scalars(select(RefusedRequest)).all()
        )
        recorder_for(pg_app.extensions).flush(db.engine)
    assert [e["success_user_id"] for e in stored_events(pg_app, site_id)] == ["other"]


def test_refusal_log_bound_on_postgresql(pg_app, monkeypatch):  # noqa: F811
    monkeypatch.setattr(refusals, "KEEP_PER_SITE", 5)
    client = pg_app.test_client()
    sign_up(client)
    site_id = add_site(client)
    live_key, _ = _keys(pg_app, site_id)
    recorder_for(pg_app.extensions).per_key_per_second = 10_000
    for _ in range(20):
        sent = client.post("/event", json={"event_name": "nope"}, headers=bearer(live_key.token))
        assert sent.status_code == 400
    with pg_app.app_context():
        recorder_for(pg_app.extensions).flush(db.engine)
        count = db.session.scalar(select(func.count()).select_from(RefusedRequest))
    assert count == 5
