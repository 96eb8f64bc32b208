"""Revocation and rotation expiry act on the very next request, on every worker process."""

from __future__ import annotations

import pytest
import requests

from datalook.keys import tokens
from tests.live import LiveServer

EVENT = {"event_name": "click", "page_path": "/pricing"}


@pytest.fixture
def server(tmp_path):
    """The real server with 4 worker processes, as `make run` starts it."""
    live = LiveServer(tmp_path / "instance", workers=4)
    live.start()
    yield live
    live.stop()


def _statuses(server: LiveServer, token: str, n: int) -> list[int]:
    """Send n events on fresh connections (so they spread over the workers)."""
    return [
        requests.post(
            server.event_url, json=EVENT, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code
        for _ in range(n)
    ]


@pytest.mark.slow
def test_revocation_is_seen_by_every_worker_on_the_next_request(server):
    token = server.new_token()
    assert _statuses(server, token, 12) == [204] * 12  # every worker has used the key
    server.cli("keys", "revoke", tokens.parse(token).key_id)  # another process revokes it
    assert _statuses(server, token, 24) == [401] * 24


@pytest.mark.slow
def test_rotation_now_retires_the_old_key_everywhere_and_the_new_one_works(server):
    old = server.new_token()
    assert _statuses(server, old, 8) == [204] * 8
    new = server.cli("keys", "rotate", tokens.parse(old).key_id, "--expire-old-in", "now").strip()
    assert _statuses(server, old, 12) == [401] * 12
    assert _statuses(server, new, 12) == [204] * 12
