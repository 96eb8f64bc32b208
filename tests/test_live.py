"""The live view, the refused-request log, test keys, and erasing events."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datalook import erasure, live
from datalook.accounts import audit
from datalook.config import ConfigError, from_environ
from datalook.extensions import db
from datalook.ingest import refusals
from datalook.ingest.refusals import recorder_for
from datalook.keys import apikeys, tokens
from datalook.models import ApiKey, AuditEntry, Event, RefusedRequest, Site, utcnow
from tests import raw_figures as stats
from tests.conftest import add_site, csrf_from, post_form, sign_up
from tests.factories import Made, bearer, stored_events

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


def _key(app, site_id: int, kind: str = "live", rate_limit: str | None = None) -> Made:
    """A key of the given kind on an existing site."""
    with app.app_context():
        site = db.session.get(Site, site_id)
        created = apikeys.create_key(site, f"{kind} key {utcnow().timestamp()}", None, kind=kind)
        if rate_limit:
            apikeys.set_limit(created.key, rate_limit)
        return Made(site.owner_id, site.id, created.key.id, created.key.key_id, created.token, "")


def _flush(app) -> None:
    """Write the refusals this process holds in memory (the thread would, within a second)."""
    with app.app_context():
        recorder_for(app.extensions).flush(db.engine)


def _refusals(app, site_id: int) -> list[RefusedRequest]:
    """The site's recorded refusals, oldest first."""
    _flush(app)
    with app.app_context():
        rows = db.session.scalars(
            select(RefusedRequest)
            .where(RefusedRequest.site_id == site_id)
            .order_by(RefusedRequest.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def _feed(client, site_id: int, **params):
    """GET live.json and return the parsed body (asserting a 200)."""
    response = client.get(f"/sites/{site_id}/live.json", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


# --- test keys ----------------------------------------------------------------------------


def test_test_tokens_have_their_own_prefix_and_the_same_rules():
    new = tokens.generate(kind="test")
    assert new.token.startswith("dl_test_") and len(new.token) == tokens.TOKEN_LENGTH
    parsed = tokens.parse(new.token)
    assert parsed.kind == "test" and parsed.key_id == new.key_id
    assert tokens.secret_matches(parsed.secret, new.secret_hash)
    # The checksum covers the prefix: a test token cannot be relabelled as a live one.
    with pytest.raises(tokens.MalformedToken):
        tokens.parse("dl_live_" + new.token[len("dl_test_") :])
    assert tokens.parse(tokens.generate().token).kind == "live"


def test_test_key_events_are_stored_marked_and_counted_in_no_report(app, client, owner):
    live_key, test_key = _key(app, owner), _key(app, owner, "test")
    assert test_key.token.startswith("dl_test_")
    assert client.post("/event", json=GOOD, headers=bearer(live_key.token)).status_code == 204
    for _ in range(3):
        sent = client.post(
            "/event", json={**GOOD, "success_user_id": "tester"}, headers=bearer(test_key.token)
        )
        assert sent.status_code == 204
    exported = stored_events(app, owner)
    assert [e["test"] for e in exported] == [False, True, True, True]
    with app.app_context():
        figures = stats.overview(owner)
        assert (figures.events, figures.conversions, figures.visitors) == (1, 1, 1)
        assert figures.revenue == pytest.approx(9.99)
        assert [r.count for r in stats.success_rules(owner)] == [1]
        assert all(not e.is_test for e in stats.recent_events(owner))
    # The live view shows them, marked.
    items = _feed(client, owner)["items"]
    assert [item["test"] for item in items] == [True, True, True, False]
    assert items[0]["key"]["kind"] == "test"


def test_live_and_test_keys_share_the_cap(app, owner):
    for index in range(apikeys.MAX_ACTIVE_KEYS):
        _key(app, owner, "test" if index % 2 else "live")
    with app.app_context(), pytest.raises(apikeys.KeyRefused, match="10 active keys"):
        apikeys.create_key(db.session.get(Site, owner), "eleventh", None, kind="test")


def test_cli_creates_test_keys_and_lists_the_kind(app, owner):
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["keys", "create", "--site", "example.com", "--name", "Try", "--test"]
    )
    assert created.exit_code == 0 and created.stdout.strip().startswith("dl_test_")
    live_one = runner.invoke(args=["keys", "create", "--site", "example.com", "--name", "Prod"])
    assert live_one.stdout.strip().startswith("dl_live_")
    listed = runner.invoke(args=["keys", "list", "--site", "example.com"]).stdout.splitlines()
    kinds = {line.split("\t")[2]: line.split("\t")[1] for line in listed}
    assert kinds == {"Try": "test", "Prod": "live"}


def test_quest_offers_a_test_key_with_prefilled_snippets(client, owner):
    quest = client.get(f"/sites/{owner}/quests/server-events").get_data(as_text=True)
    assert "Create test key" in quest and "Create key" in quest
    posted = client.post(
        f"/sites/{owner}/quests/server-events/keys",
        data={"name": "Trying it", "kind": "test", "csrf_token": csrf_from(quest)},
    )
    assert posted.status_code == 303
    shown = client.get(posted.headers["Location"])
    page = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "Your new test key" in page
    token = page.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("dl_test_")
    assert page.count(token) >= 12  # the token itself and every snippet, pre-filled
    keys_page = client.get(f"/sites/{owner}/keys/").get_data(as_text=True)
    assert "dl_test_" in keys_page and 'badge-todo">test' in keys_page


def test_unknown_key_kind_is_refused(client, owner):
    quest = client.get(f"/sites/{owner}/quests/server-events").get_data(as_text=True)
    refused = client.post(
        f"/sites/{owner}/quests/server-events/keys",
        data={"name": "x", "kind": "staging", "csrf_token": csrf_from(quest)},
    )
    assert refused.status_code == 400


def test_clear_test_events_deletes_only_test_events_and_is_logged(app, client, owner):
    live_key, test_key = _key(app, owner), _key(app, owner, "test")
    client.post("/event", json=GOOD, headers=bearer(live_key.token))
    client.post("/event", json=GOOD, headers=bearer(test_key.token))
    page = client.get(f"/sites/{owner}/live").get_data(as_text=True)
    assert client.get(f"/sites/{owner}/live/clear-test").status_code == 405  # POST only
    no_csrf = client.post(f"/sites/{owner}/live/clear-test")
    assert no_csrf.status_code == 400 and len(stored_events(app, owner)) == 2
    cleared = client.post(f"/sites/{owner}/live/clear-test", data={"csrf_token": csrf_from(page)})
    assert cleared.status_code == 302
    assert [e["test"] for e in stored_events(app, owner)] == [False]
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(DELETIONS)).one()
        assert (entry.action, entry.events_deleted) == ("clear_test", 1)
        assert entry.actor == "owner@example.com"


# --- the refused-request log ------------------------------------------------------------------


def _wrong_secret(made: Made) -> str:
    """A well-formed token for a real key id with another secret."""
    return tokens.generate(key_id=made.key_id).token


FIELD_FAMILIES = [
    ("event_name", {**GOOD, "event_name": "purchase"}, "invalid_choice"),
    ("page_path", {**GOOD, "page_path": "checkout"}, None),
    ("name", {k: v for k, v in GOOD.items() if k != "name"}, None),
    ("success_value", {**GOOD, "success_value": "9.99"}, "not_a_number"),
    ("success_user_id", {**GOOD, "success_user_id": "x" * 300}, "too_long"),
    ("properties", {**GOOD, "properties": {"nested": {"a": 1}}}, None),
    ("event_id", {**GOOD, "event_id": "has spaces"}, None),
    ("timestamp", {**GOOD, "timestamp": "yesterday"}, None),
    ("surprise", {**GOOD, "surprise": 1}, None),
]


@pytest.mark.parametrize(
    ("field", "body", "code"), FIELD_FAMILIES, ids=[f[0] for f in FIELD_FAMILIES]
)
def test_each_field_family_is_recorded(app, client, owner, field, body, code):
    made = _key(app, owner)
    answer = client.post("/event", json=body, headers=bearer(made.token))
    assert answer.status_code == 400
    (record,) = _refusals(app, owner)
    assert (record.status, record.code, record.api_key_id) == (400, "invalid_request", made.key_pk)
    errors = json.loads(record.errors)
    assert field in [e["field"].partition(".")[0] for e in errors]
    if code:
        assert code in [e["code"] for e in errors]
    assert "a@b.c" not in (record.excerpt or "") and "email" not in (record.excerpt or "")
    assert '"page_path"' in record.excerpt or field == "page_path"


BODY_FAMILIES = [
    ("invalid_json", b'{"event_name": "click", "email": "a@b.c", "page_path": ', 400),
    ("not_an_object", b'[{"event_name": "click"}]', 400),
    ("empty", b"", 400),
]


@pytest.mark.parametrize(
    ("code", "raw", "status"), BODY_FAMILIES, ids=[b[0] for b in BODY_FAMILIES]
)
def test_unreadable_bodies_are_recorded_without_pii(app, client, owner, code, raw, status):
    made = _key(app, owner)
    answer = client.post(
        "/event",
        data=raw,
        headers={**bearer(made.token), "Content-Type": "application/json"},
    )
    assert answer.status_code == status
    (record,) = _refusals(app, owner)
    assert record.status == status
    assert "a@b.c" not in (record.excerpt or "")


def test_auth_size_type_and_limit_refusals_are_recorded(app, client, owner):
    made = _key(app, owner, rate_limit="2 per 10 seconds")
    other = _key(app, owner)
    headers = bearer(made.token)
    assert client.post("/event", json=GOOD, headers=bearer(_wrong_secret(other))).status_code == 401
    big = {**GOOD, "properties": {"p": "x" * 1000}, "filler": "y" * (70 * 1024)}
    assert client.post("/event", json=big, headers=headers).status_code == 413
    plain = client.post("/event", data="hi", headers={**headers, "Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert client.post("/event", json=GOOD, headers=headers).status_code == 429
    with app.app_context():
        apikeys.revoke_key(db.session.get(ApiKey, other.key_pk))
    assert client.post("/event", json=GOOD, headers=bearer(other.token)).status_code == 401
    # An unknown key id names no site: nothing to record, nothing recorded.
    assert (
        client.post("/event", json=GOOD, headers=bearer(tokens.generate().token)).status_code == 401
    )
    records = _refusals(app, owner)
    assert [(r.status, r.code, r.api_key_id) for r in records] == [
        (401, "invalid_token", other.key_pk),
        (413, "payload_too_large", made.key_pk),
        (415, "unsupported_media_type", made.key_pk),
        (429, "rate_limited", made.key_pk),
        (401, "revoked_token", other.key_pk),
    ]
    # The owner learns what the sender is not told: the key id was right, the secret not.
    assert records[0].message.startswith("The key id is this key's, but the secret")
    assert records[3].message == "Over this key's limit of 2 per 10 seconds."


def test_a_partly_refused_batch_and_duplicates_are_recorded(app, client, owner):
    made = _key(app, owner)
    headers = bearer(made.token)
    once = {**GOOD, "event_id": "order-1"}
    assert client.post("/event", json=once, headers=headers).status_code == 204
    again = client.post("/event", json=once, headers=headers)
    assert again.headers["DataLook-Duplicate"] == "true"
    batch = client.post("/events", json={"events": [GOOD, {"event_name": "nope"}]}, headers=headers)
    assert batch.get_json()["accepted"] == 1
    records = _refusals(app, owner)
    assert [(r.status, r.code) for r in records] == [(204, "duplicate"), (200, "invalid_events")]
    items = [item for item in _feed(client, owner)["items"] if item["kind"] != "event"]
    assert [item["kind"] for item in items] == ["refused", "duplicate"]
    assert items[1]["duplicate"] is True and "order-1" in items[1]["excerpt"]
    assert items[0]["errors"][0]["index"] == 1


def test_secrets_are_never_stored_nor_logged(app, client, owner, caplog):
    caplog.set_level(logging.DEBUG)
    made = _key(app, owner, rate_limit="3 per 10 seconds")
    wrong = _wrong_secret(made)
    body_with_token = {**GOOD, "properties": {"note": made.token}, "event_name": "nope"}
    client.post("/event", json=body_with_token, headers=bearer(made.token))
    client.post(
        "/event",
        data=f'{{"x": "{made.token}"',
        headers={**bearer(made.token), "Content-Type": "application/json"},
    )
    client.post("/event", json=GOOD, headers=bearer(wrong))
    client.post("/event", json=GOOD, headers=bearer(made.token))
    client.post("/event", json=GOOD, headers=bearer(made.token))  # 429
    records = _refusals(app, owner)
    assert len(records) == 4
    assert "[token removed]" in records[0].excerpt
    secrets = [tok[-tokens.SECRET_LENGTH :] for tok in (made.token, wrong)]
    with app.app_context():
        path = db.engine.url.database
        db.engine.dispose()
    stored = b"".join(
        Path(candidate).read_bytes()
        for candidate in (path, path + "-wal")
        if Path(candidate).exists()
    )
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret not in caplog.text
    assert made.key_id.encode() in stored  # the public id is there: the search is real


def test_the_log_stays_bounded_under_a_flood(app, client, owner, monkeypatch):
    monkeypatch.setattr(refusals, "KEEP_PER_SITE", 30)
    made = _key(app, owner)
    recorder = recorder_for(app.extensions)
    started = time.monotonic()
    for _ in range(120):
        client.post("/event", json={"event_name": "nope"}, headers=bearer(made.token))
    elapsed = time.monotonic() - started
    # At most PER_KEY_PER_SECOND records per key per second of flood are even kept in memory.
    assert recorder.pending() <= refusals.PER_KEY_PER_SECOND * (int(elapsed) + 2)
    recorder.per_key_per_second = 10_000  # now let everything through: the table's bound
    for _ in range(80):
        client.post("/event", json={"event_name": "nope"}, headers=bearer(made.token))
    assert len(_refusals(app, owner)) == 30


def _log_clock(app, monkeypatch, per_second: int = 2) -> list[float]:
    """Put the app's refused-request log on a settable clock (its per-second budgets), at
    `per_second` records per key and second."""
    app.wsgi_app.ingestion.context  # noqa: B018 - resolved now: it sets the log's budget
    recorder = recorder_for(app.extensions)
    now = [1000.0]
    monkeypatch.setattr(recorder, "_clock", lambda: now[0])
    monkeypatch.setattr(recorder, "per_key_per_second", per_second)
    return now


def test_a_flood_of_one_wrong_secret_is_recorded_and_counted_exactly(
    app, client, owner, monkeypatch
):
    # Past a key's records for the second, a remembered wrong token is refused without its
    # look-up; the log must read as if every one had been looked up.
    made = _key(app, owner)
    forged = bearer(_wrong_secret(made))
    now = _log_clock(app, monkeypatch)
    assert [client.post("/event", json=GOOD, headers=forged).status_code for _ in range(7)] == [
        401
    ] * 7
    now[0] += 1
    assert client.post("/event", json=GOOD, headers=forged).status_code == 401
    records = _refusals(app, owner)
    assert [(r.status, r.code, r.api_key_id, r.suppressed) for r in records] == [
        (401, "invalid_token", made.key_pk, 0),
        (401, "invalid_token", made.key_pk, 0),
        (401, "invalid_token", made.key_pk, 5),
    ]
    assert records[2].message.startswith("The key id is this key's, but the secret")


def test_a_wrong_secret_of_a_key_deleted_meanwhile_is_never_recorded(
    app, client, owner, monkeypatch
):
    made = _key(app, owner)
    forged = bearer(_wrong_secret(made))
    now = _log_clock(app, monkeypatch)
    for _ in range(3):  # two records, then remembered and only counted
        assert client.post("/event", json=GOOD, headers=forged).status_code == 401
    with app.app_context():
        erasure.delete_site(db.session.get(Site, owner), None)  # its key goes with it
    assert client.post("/event", json=GOOD, headers=forged).status_code == 401  # counted
    now[0] += 1  # a record would be written now: the look-up finds no key, names none
    answer = client.post("/event", json=GOOD, headers=forged)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "invalid_token"
    assert recorder_for(app.extensions).pending() == 0
    _flush(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RefusedRequest)) == 0


def test_a_rotation_makes_a_new_key_id_and_a_wrong_token_stays_wrong(app, client, owner):
    made = _key(app, owner)
    forged = bearer(_wrong_secret(made))
    assert client.post("/event", json=GOOD, headers=forged).status_code == 401  # remembered
    with app.app_context():
        rotated = apikeys.rotate_key(db.session.get(ApiKey, made.key_pk), "now", None)
        new_id, new_token = rotated.key.key_id, rotated.token
        old = db.session.get(ApiKey, made.key_pk)
        assert old.key_id == made.key_id and new_id != made.key_id
    answers = {
        "the wrong token": client.post("/event", json=GOOD, headers=forged),
        "the old token": client.post("/event", json=GOOD, headers=bearer(made.token)),
        "the new token": client.post("/event", json=GOOD, headers=bearer(new_token)),
    }
    assert {name: a.status_code for name, a in answers.items()} == {
        "the wrong token": 401,
        "the old token": 401,
        "the new token": 204,
    }
    assert answers["the wrong token"].get_json()["error"]["code"] == "invalid_token"
    assert answers["the old token"].get_json()["error"]["code"] == "revoked_token"


def test_skipped_refusals_are_counted_on_the_next_record():
    now = [100.0]
    recorder = refusals.RefusalRecorder(per_key_per_second=2, clock=lambda: now[0])
    key = apikeys.KnownKey(id=1, site_id=1, is_test=False)
    for _ in range(5):
        recorder.refused(key, utcnow(), 400, "invalid_request", "bad")
    assert recorder.pending() == 2
    now[0] += 1
    recorder.refused(key, utcnow(), 400, "invalid_request", "bad")
    rows = recorder._pending  # noqa: SLF001 - the records as they will be written
    assert [row["suppressed"] for row in rows] == [0, 0, 3]


def test_pending_records_are_bounded_in_memory():
    recorder = refusals.RefusalRecorder(per_key_per_second=1000, max_pending=10)
    for key_pk in range(50):
        recorder.refused(apikeys.KnownKey(key_pk, 1, False), utcnow(), 400, "x", "bad")
    assert recorder.pending() == 10


def test_old_refusals_are_pruned_and_not_shown(app, client, owner):
    made = _key(app, owner)
    with app.app_context():
        db.session.add(
            RefusedRequest(
                site_id=owner,
                api_key_id=made.key_pk,
                received_at=utcnow() - timedelta(days=8),
                status=400,
                code="invalid_request",
                message="old",
            )
        )
        db.session.commit()
    assert [item for item in _feed(client, owner)["items"] if item["kind"] == "refused"] == []
    client.post("/event", json={"event_name": "nope"}, headers=bearer(made.token))
    assert [r.message for r in _refusals(app, owner)] != ["old"]
    assert all(r.message != "old" for r in _refusals(app, owner))


def test_quest_status_explains_a_refusal(app, client, owner):
    made = _key(app, owner)
    url = f"/sites/{owner}/keys/{made.key_id}/status.json"
    assert client.get(url).get_json()["refused"] is None
    client.post("/event", json={**GOOD, "success_value": "9.99"}, headers=bearer(made.token))
    refused = client.get(url).get_json()["refused"]
    assert refused["status"] == 400
    assert refused["errors"][0]["field"] == "success_value"
    assert refused["errors"][0]["message"].startswith("success_value must be a number")
    client.post("/event", json=GOOD, headers=bearer(made.token))
    body = client.get(url).get_json()
    assert body["received"] is True and body["refused"] is None


# --- live.json ------------------------------------------------------------------------------


def test_live_feed_merges_events_and_refusals_newest_first_with_a_cursor(app, client, owner):
    made = _key(app, owner)
    headers = bearer(made.token)
    client.post("/event", json=GOOD, headers=headers)
    client.post("/event", json={"event_name": "nope"}, headers=headers)
    first = _feed(client, owner)
    assert [item["kind"] for item in first["items"]] == ["refused", "event"]
    event = first["items"][1]
    assert event["key"] == {"key_id": made.key_id, "name": event["key"]["name"], "kind": "live"}
    assert event["stripped_keys"] == ["email"] and event["properties"] == {"plan": "starter"}
    assert event["success_value"] == 9.99 and event["test"] is False
    assert event["duplicate"] is False and event["visitor_id"] == "u:user_42"
    assert [k["key_id"] for k in first["keys"]] == [made.key_id]
    again = _feed(client, owner, after=first["cursor"])
    assert again["items"] == [] and again["cursor"] == first["cursor"] and "keys" not in again
    client.post("/event", json={**GOOD, "event_name": "click"}, headers=headers)
    newer = _feed(client, owner, after=first["cursor"])
    assert [item["event_name"] for item in newer["items"]] == ["click"]


def test_live_feed_filters(app, client, owner):
    made, other = _key(app, owner), _key(app, owner, "test")
    client.post("/event", json=GOOD, headers=bearer(made.token))
    client.post(
        "/event",
        json={**GOOD, "event_name": "click", "success_user_id": "u2"},
        headers=bearer(other.token),
    )
    client.post("/event", json={"event_name": "nope"}, headers=bearer(made.token))

    def kinds(**params):
        return [(i["kind"], i.get("event_name")) for i in _feed(client, owner, **params)["items"]]

    assert kinds(type="click") == [("event", "click")]
    assert kinds(rule="paid-customer") == [("event", "success")]
    assert kinds(visitor="u2") == [("event", "click")]
    assert kinds(key=made.key_id) == [("refused", None), ("event", "success")]
    assert kinds(refused="1") == [("refused", None)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "garbage"}, "after"),
        ({"after": "e1"}, "after"),
        ({"type": "purchase"}, "type"),
        ({"key": "not a key!"}, "key"),
        ({"key": "Unknown12345"}, "key"),
        ({"refused": "maybe"}, "refused"),
        ({"visitor": "v" * 300}, "visitor"),
        ({"rule": "r" * 101}, "rule"),
    ],
)
def test_live_feed_names_a_bad_parameter(client, owner, params, field):
    answer = client.get(f"/sites/{owner}/live.json", query_string=params)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["errors"][0]["field"] == field


def test_live_pages_belong_to_their_owner(app, client, owner):
    for path in ("live", "live.json", "privacy"):
        assert client.get(f"/sites/{owner}/{path}").status_code == 200
    other = app.test_client()
    sign_up(other, "other@example.com")
    add_site(other, "other.example.com")
    for path in ("live", "live.json", "privacy"):
        assert other.get(f"/sites/{owner}/{path}").status_code == 404
    token = csrf_from(other.get("/sites/").get_data(as_text=True))
    assert (
        other.post(f"/sites/{owner}/live/clear-test", data={"csrf_token": token}).status_code == 404
    )
    erase = {"csrf_token": token, "user_id": "user_42", "confirmed": "yes"}
    assert other.post(f"/sites/{owner}/privacy/erase", data=erase).status_code == 404


def test_the_panel_is_its_own_page_and_the_dashboard_links_to_it(client, owner):
    page = client.get(f"/sites/{owner}/live").get_data(as_text=True)
    assert f'data-live-url="/sites/{owner}/live.json"' in page
    assert "/static/live.js" in page and "<script>" not in page
    assert "Clear test events" in page
    # The dashboard keeps its one screen: a link to the live view, not the feed itself.
    dashboard = client.get(f"/sites/{owner}/").get_data(as_text=True)
    assert "data-live-url" not in dashboard and f'href="/sites/{owner}/live"' in dashboard


# --- erasure --------------------------------------------------------------------------------


def test_erase_from_the_dashboard_with_confirmation(app, client, owner):
    made = _key(app, owner)
    for user in ("user_42", "user_42", "someone_else"):
        client.post("/event", json={**GOOD, "success_user_id": user}, headers=bearer(made.token))
    client.post(
        "/event",
        json={**GOOD, "success_user_id": "user_42", "event_name": "x"},
        headers=bearer(made.token),
    )
    calls = []
    erasure.ON_EVENTS_DELETED.append(lambda session, deleted: calls.append(deleted))
    try:
        asked = post_form(
            client,
            f"/sites/{owner}/privacy/erase",
            {"user_id": "user_42"},
            f"/sites/{owner}/privacy",
        )
        assert asked.status_code == 200 and "Erase 2 events?" in asked.get_data(as_text=True)
        assert len(stored_events(app, owner)) == 3  # nothing erased before the confirmation
        done = client.post(
            f"/sites/{owner}/privacy/erase",
            data={
                "user_id": "user_42",
                "confirmed": "yes",
                "csrf_token": csrf_from(asked.get_data(as_text=True)),
            },
        )
        assert done.status_code == 302
    finally:
        erasure.ON_EVENTS_DELETED.pop()
    left = stored_events(app, owner)
    assert [e["success_user_id"] for e in left] == ["someone_else"]
    assert all("user_42" not in (r.excerpt or "") for r in _refusals(app, owner))
    with app.app_context():
        assert stats.overview(owner).visitors == 1 and stats.overview(owner).conversions == 1
        entry = db.session.scalars(select(AuditEntry).where(DELETIONS)).one()
        assert (entry.action, entry.events_deleted, entry.actor) == (
            "erase_visitor",
            2,
            "owner@example.com",
        )
        assert "user_42" not in entry.subject
        assert entry.subject == erasure.subject_digest(owner, "user_42")
    (deleted,) = calls
    assert (deleted.site_id, deleted.count, deleted.visitor_id) == (owner, 2, "u:user_42")
    assert deleted.first_hour is not None and deleted.first_hour.minute == 0
    assert "Erased a visitor" in client.get(f"/sites/{owner}/privacy").get_data(as_text=True)


def test_a_failing_hook_rolls_the_erasure_back(app, owner):
    made = _key(app, owner)
    client = app.test_client()
    client.post("/event", json=GOOD, headers=bearer(made.token))

    def broken(session, deleted):
        raise RuntimeError("summaries unavailable")

    erasure.ON_EVENTS_DELETED.append(broken)
    try:
        with app.app_context(), pytest.raises(RuntimeError):
            erasure.erase_visitor(db.session.get(Site, owner), "user_42", "test")
    finally:
        erasure.ON_EVENTS_DELETED.pop()
    assert len(stored_events(app, owner)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(DELETIONS)) == 0


def test_cli_erase_and_retention_delete(app, owner):
    made = _key(app, owner)
    client = app.test_client()
    now = utcnow()
    old = (now - timedelta(days=3)).replace(microsecond=0).isoformat() + "Z"
    client.post(
        "/event",
        json={**GOOD, "timestamp": old, "success_user_id": "old"},
        headers=bearer(made.token),
    )
    client.post("/event", json=GOOD, headers=bearer(made.token))
    client.post("/event", json={**GOOD, "success_user_id": "b"}, headers=bearer(made.token))
    runner = app.test_cli_runner()
    erased = runner.invoke(
        args=["events", "erase", "--site", "example.com", "--visitor", "user_42"]
    )
    assert erased.exit_code == 0, erased.output
    assert [e["success_user_id"] for e in stored_events(app, owner)] == ["old", "b"]
    cutoff = (now - timedelta(days=1)).date().isoformat()
    deleted = runner.invoke(args=["events", "delete", "--site", "example.com", "--before", cutoff])
    assert deleted.exit_code == 0, deleted.output
    assert [e["success_user_id"] for e in stored_events(app, owner)] == ["b"]
    bad = runner.invoke(args=["events", "delete", "--site", "example.com", "--before", "soon"])
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output
    with app.app_context():
        actions = db.session.execute(
            select(AuditEntry.action, AuditEntry.events_deleted)
            .where(DELETIONS)
            .order_by(AuditEntry.id)
        ).all()
    assert [tuple(a) for a in actions] == [("erase_visitor", 1), ("delete_before", 1)]


def test_erase_needs_a_user_id(app, owner):
    with app.app_context(), pytest.raises(erasure.ErasureRefused):
        erasure.erase_visitor(db.session.get(Site, owner), "", "test")
    assert Event  # the model the erasure deletes from


@pytest.mark.parametrize("raw", ["-1", "many", "101"])
def test_refusal_log_rate_is_checked(tmp_path, raw):
    with pytest.raises(ConfigError, match="REFUSAL_LOG_PER_SECOND"):
        from_environ({"REFUSAL_LOG_PER_SECOND": raw}, tmp_path)


def test_a_zero_refusal_log_rate_records_nothing(make_app):
    quiet = make_app(REFUSAL_LOG_PER_SECOND=0)
    client = quiet.test_client()
    sign_up(client)
    site_id = add_site(client)
    made = _key(quiet, site_id)
    assert (
        client.post("/event", json={"event_name": "x"}, headers=bearer(made.token)).status_code
        == 400
    )
    assert _refusals(quiet, site_id) == []


def test_a_burst_larger_than_a_page_is_flagged_as_a_gap(app, client, owner, monkeypatch):
    monkeypatch.setattr(live, "PAGE", 3)
    made = _key(app, owner)
    start = _feed(client, owner)
    for index in range(5):
        client.post("/event", json={**GOOD, "page_path": f"/p{index}"}, headers=bearer(made.token))
    burst = _feed(client, owner, after=start["cursor"])
    assert burst["gap"] is True
    assert [item["page_path"] for item in burst["items"]] == ["/p4", "/p3", "/p2"]
    assert _feed(client, owner, after=burst["cursor"]) == {
        "items": [],
        "cursor": burst["cursor"],
        "gap": False,
        "bots": {"days": 7, "requests": 0, "by_bot": []},  # every poll: the line stays live
    }


def test_filtered_reads_look_only_at_the_newest_events(app, client, owner, monkeypatch):
    monkeypatch.setattr(live, "SCAN_WINDOW", 3)
    made = _key(app, owner)
    client.post("/event", json={**GOOD, "event_name": "click"}, headers=bearer(made.token))
    for _ in range(4):
        client.post("/event", json=GOOD, headers=bearer(made.token))
    assert [i["event_name"] for i in _feed(client, owner, type="click")["items"]] == []
    client.post("/event", json={**GOOD, "event_name": "click"}, headers=bearer(made.token))
    assert [i["event_name"] for i in _feed(client, owner, type="click")["items"]] == ["click"]


def test_erasing_a_user_id_without_events_says_there_is_nothing_to_erase(app, client, owner):
    made = _key(app, owner)
    client.post("/event", json={**GOOD, "success_user_id": "user_42"}, headers=bearer(made.token))
    for confirmed in ("", "yes"):  # asked, or posted as confirmed: the same answer
        answer = post_form(
            client,
            f"/sites/{owner}/privacy/erase",
            {"user_id": "User_42", "confirmed": confirmed},
            f"/sites/{owner}/privacy",
        )
        page = answer.get_data(as_text=True)
        assert answer.status_code == 200
        assert "Erase 0 events" not in page and "Erase for good" not in page
        assert "there is nothing to erase" in page and "“User_42”" in page
    assert len(stored_events(app, owner)) == 1
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "erase_visitor")
            )
            == 0
        )
    assert "No deletions yet." in client.get(f"/sites/{owner}/privacy").get_data(as_text=True)
    # The command line says the same, and logs nothing either.
    result = app.test_cli_runner().invoke(
        args=["events", "erase", "--site", "example.com", "--visitor", "nobody"]
    )
    assert result.exit_code == 0
    assert result.stderr == "No events of that visitor in example.com: nothing to erase\n"
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "erase_visitor")
            )
            == 0
        )


def test_the_dashboard_says_when_a_site_has_only_test_events(app, client, owner):
    dashboard = f"/sites/{owner}/"
    assert "Only test events so far" not in client.get(dashboard).get_data(as_text=True)
    test_key = _key(app, owner, "test")
    for _ in range(2):
        client.post("/event", json=GOOD, headers=bearer(test_key.token))
    page = client.get(dashboard).get_data(as_text=True)
    assert "Only test events so far" in page
    assert "received 2 events from test keys" in page
    assert f'href="/sites/{owner}/live">See them in the live view</a>' in page
    # One counted event and the notice goes: the reports have something to show.
    client.post("/event", json=GOOD, headers=bearer(_key(app, owner).token))
    assert "Only test events so far" not in client.get(dashboard).get_data(as_text=True)


def test_a_server_event_whose_context_is_too_old_to_join_is_noted(app, client, owner):
    made = _key(app, owner)
    headers = bearer(made.token)
    context = {"ip": "198.51.100.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
    old = utcnow() - timedelta(days=3)
    body = {**GOOD, "context": context, "timestamp": old.isoformat() + "Z"}
    answer = client.post("/event", json=body, headers=headers)
    assert answer.status_code == 204 and answer.headers["DataLook-Visit-Not-Joined"] == "too-old"
    fresh = {**GOOD, "context": context}  # today's context joins: nothing to note
    batch = client.post("/events", json={"events": [fresh, body]}, headers=headers)
    assert batch.get_json()["accepted"] == 2
    note = (
        f"context from {old.date().isoformat()} could not be joined: "
        "only today and yesterday can be."
    )
    records = _refusals(app, owner)
    assert [(r.status, r.code, r.message) for r in records] == [
        (204, "context_too_old", note),
        (200, "context_too_old", note),
    ]
    items = _feed(client, owner)["items"]
    noted = [item for item in items if item["kind"] == "not_joined"]
    assert [(n["code"], n["message"]) for n in noted] == [("context_too_old", note)] * 2
    assert [n["key"]["key_id"] for n in noted] == [made.key_id] * 2
    # The events themselves were stored and count, beside the notes.
    assert sum(item["kind"] == "event" for item in items) == 3
    # The address and User-Agent are kept nowhere, not in the note's excerpt either.
    assert all("198.51.100.7" not in (n["excerpt"] or "") for n in noted)
    assert all("Firefox" not in (n["excerpt"] or "") for n in noted)
