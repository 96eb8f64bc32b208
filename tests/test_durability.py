"""Durability on the real server: a 204 means committed, across restarts, kills and SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import uuid
from contextlib import closing

import pytest
import requests

from tests.factories import bearer
from tests.live import LiveServer

pytestmark = pytest.mark.slow


def send(server: LiveServer, token: str, event_id: str, session=None) -> requests.Response:
    """POST one event with a unique id to the server."""
    body = {
        "event_name": "success",
        "name": "paid-customer",
        "page_path": "/checkout/success",
        "success_value": 9.99,
        "success_user_id": "user_42",
        "event_id": event_id,
    }
    return (session or requests).post(
        server.event_url, json=body, headers=bearer(token), timeout=10
    )


def committed_ids(server: LiveServer) -> list[str]:
    """The event_ids in the database, read by a connection of our own (committed data only)."""
    with closing(sqlite3.connect(server.instance / "datalook.db", timeout=10)) as connection:
        return [row[0] for row in connection.execute("SELECT event_id FROM events")]


def test_a_204_is_committed_before_it_is_sent(live_server):
    token = live_server.new_token()
    for n in range(10):
        event_id = f"commit-{n}"
        response = send(live_server, token, event_id)
        assert response.status_code == 204, response.text[:300]
        # Another connection sees the row the moment the 204 arrives: it was committed.
        assert event_id in committed_ids(live_server)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_acknowledged_events_survive_a_restart(live_server, how):
    token = live_server.new_token()
    domain = live_server.last_domain
    sent = [f"{how}-{n}" for n in range(5)]
    for event_id in sent:
        assert send(live_server, token, event_id).status_code == 204
    if how == "sigterm":
        live_server.stop()
    else:
        # The whole process group (master and workers), with no chance to clean up.
        os.killpg(live_server.process.pid, signal.SIGKILL)
        live_server.process.wait(timeout=30)
        live_server.stop()

    again = LiveServer(live_server.instance, workers=1)
    again.start()
    try:
        stored = again.stored_events(domain)
        assert sorted(e["event_id"] for e in stored) == sorted(sent)
        assert all(e["success_value"] == 9.99 for e in stored)
        # The same key still works, and dedup remembers what was stored before the restart.
        repeat = send(again, token, sent[0])
        assert repeat.status_code == 204
        assert repeat.headers.get("DataLook-Duplicate") == "true"
        assert len(again.stored_events(domain)) == len(sent)
    finally:
        again.stop()


def test_nothing_acknowledged_is_lost_when_the_server_is_stopped_under_load(live_server):
    token = live_server.new_token()
    domain = live_server.last_domain
    acknowledged: list[str] = []
    attempted: list[str] = []
    other_answers: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                event_id = f"load-{worker}-{uuid.uuid4().hex}"
                with lock:
                    attempted.append(event_id)
                try:
                    response = send(live_server, token, event_id, session)
                except requests.RequestException:
                    return  # the server is gone: stop sending
                with lock:
                    if response.status_code == 204:
                        acknowledged.append(event_id)
                    else:
                        other_answers.append(response.status_code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    live_server.stop()  # SIGTERM while the clients are still sending
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    assert len(acknowledged) >= 100, "the load did not get going"
    assert set(other_answers) <= {503}, other_answers
    stored = [e["event_id"] for e in live_server.stored_events(domain)]
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events are not in the database"
    assert set(stored) <= set(attempted)
    # The usage counters were flushed on the way out: every stored event was counted.
    with closing(sqlite3.connect(live_server.instance / "datalook.db")) as connection:
        requests_counted = connection.execute("SELECT SUM(requests) FROM key_usage").fetchone()[0]
        last_used = connection.execute("SELECT last_used_at FROM api_keys").fetchone()[0]
    assert requests_counted is not None and requests_counted >= len(stored)
    assert last_used is not None
