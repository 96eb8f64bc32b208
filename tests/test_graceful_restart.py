"""A graceful restart of the real server (SIGHUP to the master, as README documents): every
worker is replaced while clients keep sending, and not one request is refused or lost."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from datalook.keys import tokens
from tests.factories import bearer
from tests.live import LiveServer

pytestmark = pytest.mark.slow

BODY = {"event_name": "success", "name": "paid-customer", "page_path": "/checkout/success"}


def workers(server: LiveServer) -> set[int]:
    """The master's worker processes (not the nginx front, not the fold's supervisor)."""
    assert server.process is not None
    master = str(server.process.pid)
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rpartition(")")[2].split()[1] == master and "(nginx)" not in stat:
            if "(flask)" not in stat:
                found.add(int(entry.name))
    return found


@pytest.fixture
def server(tmp_path):
    """The production server with two workers."""
    # A loaded machine can make an event's write wait past the default busy budget (a 503
    # the API promises, with Retry-After); this test is about restarts, so the budget is wide.
    live = LiveServer(
        tmp_path / "instance", workers=2, extra_env={"SQLITE_BUSY_TIMEOUT_MS": "60000"}
    )
    live.start()
    yield live
    live.stop()


def test_sighup_replaces_every_worker_without_refusing_or_losing_a_request(server):
    token = server.new_token()
    domain = server.last_domain
    # The clients send faster than the default limit allows: this test is not about limits.
    server.cli("keys", "set-limit", tokens.parse(token).key_id, "100000000 per 10 seconds")
    answers: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                event_id = uuid.uuid4().hex
                response = session.post(
                    server.event_url,
                    json={**BODY, "event_id": event_id},
                    headers=bearer(token),
                    timeout=60,
                )
                with lock:
                    answers.append((event_id, response.status_code))

    before = workers(server)
    assert len(before) == 2, before
    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGHUP)
        # Both workers are replaced, one after the other, each once its successor serves.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (
            workers(server) & before or len(workers(server)) != 2
        ):
            time.sleep(0.2)
        after = workers(server)
        time.sleep(1)  # the new workers serve too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not after & before and len(after) == 2, (before, after)
    statuses = {status for _, status in answers}
    assert statuses == {204}, statuses
    stored = {event["event_id"] for event in server.stored_events(domain)}
    assert {event_id for event_id, _ in answers} <= stored
