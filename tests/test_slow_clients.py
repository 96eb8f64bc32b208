"""Slow clients cannot take the server down: the production setup (nginx in front of
gunicorn's sync workers, scripts/serve.sh) keeps answering while 100 of them are connected."""

from __future__ import annotations

import http.client
import json

import pytest

from bench.slow_clients import SlowClients, probe
from tests.live import LiveServer

SLOW = 100
# gunicorn's worker timeout (gunicorn.conf.py): without a front, a held worker is freed no
# sooner than this.
WORKER_TIMEOUT_S = 30


@pytest.fixture
def server(tmp_path):
    """The production server (two sync workers) with a key."""
    live = LiveServer(tmp_path / "instance", workers=2)
    live.start()
    yield live
    live.stop()


def test_events_are_answered_beside_100_slow_clients(server):
    token = server.new_token()
    warm = [probe("127.0.0.1", server.port, token, timeout=10) for _ in range(3)]
    assert [status for status, _ in warm] == [204] * 3
    # An availability bound, not a speed assertion: a request stuck behind a slow client
    # waits until that body ends or the worker times out (30 s); one that is served takes
    # milliseconds even on a loaded machine. 5 s, or 50 times the slowest warm request if this
    # machine is slower than that, separates the two with a wide margin.
    bound = max(5.0, 50 * max(seconds for _, seconds in warm))
    slow = SlowClients("127.0.0.1", server.port, SLOW, interval=1.0)
    slow.start()
    try:
        answers = [probe("127.0.0.1", server.port, token, timeout=bound) for _ in range(10)]
        assert [status for status, _ in answers] == [204] * 10, answers
        assert max(seconds for _, seconds in answers) <= bound
        # The slow clients are still connected (held by the front, not dropped to make room).
        assert slow.still_open() == SLOW - 1
        # The one that announced more than it sent is let go long before a worker would be.
        what, after = slow.liar_answer(timeout=WORKER_TIMEOUT_S)
        assert what in ("closed by the server", "HTTP/1.1 408 Request Time-out"), what
        assert after < WORKER_TIMEOUT_S
    finally:
        slow.stop()
    assert len(server.stored_events()) == 3 + 10


def failed_auth_status(server: LiveServer, source: str, bad_token: str, forged: str) -> int:
    """POST /event with a wrong secret from the local address `source`; return the status."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=10, source_address=(source, 0)
    )
    try:
        conn.request(
            "POST",
            "/event",
            body=json.dumps({"event_name": "success", "name": "x"}),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {bad_token}",
                "X-Forwarded-For": forged,
            },
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_per_address_limits_see_the_real_client_behind_the_front(server):
    token = server.new_token()
    bad = token[:-1] + ("A" if token[-1] != "A" else "B")
    statuses = [failed_auth_status(server, "127.0.0.2", bad, f"198.51.100.{n}") for n in range(61)]
    # 60 failed attempts a minute per address: a forged X-Forwarded-For buys none.
    assert statuses[:60] == [401] * 60
    assert statuses[60] == 429
    # Another client (another address) is not held back: the app sees addresses, not nginx.
    assert failed_auth_status(server, "127.0.0.3", bad, "127.0.0.2") == 401
