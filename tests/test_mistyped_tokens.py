"""A mistyped or truncated token that still names a real key id is shown to the key's owner.

The sender gets the same 401 malformed_token as before; the owner sees the refusal in the
live view (and the quest), recorded like a wrong secret: limited per client address and by
the refusal log's own cap, and without anything of the secret.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from datalook.extensions import db
from datalook.ingest import refusals
from datalook.ingest.refusals import recorder_for
from datalook.keys import apikeys, tokens
from datalook.models import RefusedRequest, Site, utcnow
from tests.factories import Made, bearer

GOOD = {"event_name": "custom", "name": "signup", "page_path": "/welcome"}


def _key(app, site_id: int) -> Made:
    """A live key on an existing site."""
    with app.app_context():
        site = db.session.get(Site, site_id)
        created = apikeys.create_key(site, f"key {utcnow().timestamp()}", None)
        return Made(site.owner_id, site.id, created.key.id, created.key.key_id, created.token, "")


def _refusals(app, site_id: int) -> list[RefusedRequest]:
    """The site's recorded refusals (after writing what this process holds), oldest first."""
    with app.app_context():
        recorder_for(app.extensions).flush(db.engine)
        rows = db.session.scalars(
            select(RefusedRequest)
            .where(RefusedRequest.site_id == site_id)
            .order_by(RefusedRequest.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def _all_refusals(app) -> list[RefusedRequest]:
    """Every recorded refusal, of every site."""
    with app.app_context():
        recorder_for(app.extensions).flush(db.engine)
        rows = db.session.scalars(select(RefusedRequest)).all()
        db.session.expunge_all()
        return list(rows)


def _typo(token: str) -> str:
    """The token with one character of its checksum changed (so the checksum fails)."""
    last = token[-1]
    return token[:-1] + ("a" if last != "a" else "b")


def _mistyped_forms(token: str) -> list[str]:
    """Ways a pasted token goes wrong while its key id stays whole."""
    secret_at = len(token) - tokens.SECRET_LENGTH
    middle = secret_at + 10
    swapped = token[:middle] + ("Z" if token[middle] != "Z" else "Y") + token[middle + 1 :]
    return [_typo(token), swapped, token[:-5], token[: secret_at + 3]]


def test_a_mistyped_token_is_refused_as_before_and_shown_live(app, client, owner):
    made = _key(app, owner)
    answer = client.post("/event", json=GOOD, headers=bearer(_typo(made.token)))
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "malformed_token"
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="DataLook", error="invalid_request"'
    (record,) = _refusals(app, owner)
    assert (record.status, record.code, record.api_key_id) == (401, "malformed_token", made.key_pk)
    assert "mistyped or truncated" in record.message
    items = client.get(f"/sites/{owner}/live.json").get_json()["items"]
    (shown,) = [item for item in items if item["kind"] == "refused"]
    assert shown["status"] == 401 and shown["code"] == "malformed_token"
    assert "mistyped or truncated" in shown["message"]
    # The onboarding quest's wait explains it too, instead of staying silent.
    status = client.get(f"/sites/{owner}/keys/{made.key_id}/status.json").get_json()
    assert status["refused"]["code"] == "malformed_token"


def test_typos_and_cuts_in_the_secret_are_all_recorded(app, client, owner):
    made = _key(app, owner)
    forms = _mistyped_forms(made.token)
    for form in forms:
        assert client.post("/event", json=GOOD, headers=bearer(form)).status_code == 401
    records = _refusals(app, owner)
    assert [(r.code, r.api_key_id) for r in records] == [("malformed_token", made.key_pk)] * len(
        forms
    )


@pytest.mark.parametrize(
    "credentials",
    [
        "not-a-token",
        "dl_live_",
        "dl_live_short_abc",
        "dl_prod_{key_id}_{secret}",
        "{key_id}_{secret}",
        "dl_live_{unknown}_{secret}",
        "dl_live_{key_id}{secret}",
        "dl_live_{key_id}_{secret}!",
    ],
)
def test_a_malformed_token_without_a_real_key_id_records_nothing(app, client, owner, credentials):
    made = _key(app, owner)
    secret = _typo(made.token)[-tokens.SECRET_LENGTH :]
    unknown = tokens.generate_key_id()
    sent = credentials.format(key_id=made.key_id, secret=secret, unknown=unknown)
    answer = client.post("/event", json=GOOD, headers=bearer(sent))
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "malformed_token"
    assert _all_refusals(app) == []


def test_nothing_of_the_secret_is_stored_nor_logged(app, client, owner, caplog):
    caplog.set_level(logging.DEBUG)
    made = _key(app, owner)
    forms = _mistyped_forms(made.token)
    for form in forms:
        client.post("/event", json=GOOD, headers=bearer(form))
    assert len(_refusals(app, owner)) == len(forms)
    with app.app_context():
        path = db.engine.url.database
        db.engine.dispose()
    stored = b"".join(
        Path(candidate).read_bytes()
        for candidate in (path, path + "-wal")
        if Path(candidate).exists()
    )
    secret = made.token[-tokens.SECRET_LENGTH :]
    # Any 8 characters in a row of the secret (a cut token's head, a typo's tail).
    pieces = {secret[i : i + 8] for i in range(len(secret) - 7)}
    for piece in pieces:
        assert piece.encode() not in stored
        assert piece not in caplog.text
    assert made.key_id.encode() in stored  # the public id is there: the search is real


def test_a_flood_of_mistyped_tokens_is_limited_like_wrong_secrets(app, client, owner):
    made = _key(app, owner)
    mistyped = _typo(made.token)
    recorder = recorder_for(app.extensions)
    started = time.monotonic()
    statuses = [
        client.post("/event", json=GOOD, headers=bearer(mistyped)).status_code for _ in range(70)
    ]
    elapsed = time.monotonic() - started
    # Per client address: 60 failed attempts a minute, then 429 (as for a wrong secret).
    assert statuses[:60] == [401] * 60
    assert set(statuses[60:]) == {429}
    # The log's own cap: at most PER_KEY_PER_SECOND records per key and second of flood.
    assert recorder.pending() <= refusals.PER_KEY_PER_SECOND * (int(elapsed) + 2)
    records = _refusals(app, owner)
    assert {r.api_key_id for r in records} == {made.key_pk}
    assert len(records) <= refusals.PER_KEY_PER_SECOND * (int(elapsed) + 2)
    # A wrong secret from the same address is limited by the same budget, already spent.
    wrong = tokens.generate(key_id=made.key_id).token
    assert client.post("/event", json=GOOD, headers=bearer(wrong)).status_code == 429
