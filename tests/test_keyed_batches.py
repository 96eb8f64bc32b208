"""Large batches whose events carry event ids: each id's outcome (stored or duplicate) is
its own, whatever the batch's size and order."""

from __future__ import annotations

from tests.factories import bearer, create_token, stored_events

BASE = {"event_name": "custom", "page_path": "/p"}


def _post(client, token: str, ids: list) -> dict:
    events = [{**BASE, "event_id": i} if i is not None else dict(BASE) for i in ids]
    response = client.post("/events", json={"events": events}, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response.get_json()


def test_ids_over_several_statements_are_each_stored_once(app, client):
    made = create_token(app)
    per = 100
    first = [f"e{n}" for n in range(per + 7)]
    answer = _post(client, made.token, first)
    assert (answer["accepted"], answer["duplicates"]) == (per + 7, 0)
    # Old ids scattered among new ones, a repeat inside the batch, events without an id.
    second = [f"e{n}" for n in range(0, per + 7, 3)] + [f"n{n}" for n in range(per)]
    second += ["n0", None, "e1", None]
    answer = _post(client, made.token, second)
    old = len(range(0, per + 7, 3)) + 1  # and e1 again
    assert (answer["accepted"], answer["duplicates"]) == (per + 2, old + 1)
    ids = [e["event_id"] for e in stored_events(app, made.site_id)]
    assert sorted(i for i in ids if i is not None) == sorted(first + [f"n{n}" for n in range(per)])
    assert ids.count(None) == 2


def test_the_same_ids_on_another_site_are_new_there(app, client):
    one, other = create_token(app), create_token(app)
    ids = [f"x{n}" for n in range(101)]
    assert _post(client, one.token, ids)["accepted"] == len(ids)
    assert _post(client, other.token, ids)["accepted"] == len(ids)
    assert _post(client, other.token, ids)["duplicates"] == len(ids)
