"""The Redis moving-window storage against real Redis servers.

Exactness runs on the shared Redis at 127.0.0.1:6379, isolated by a unique key prefix per test
(only that prefix is ever deleted). Outage tests start a private redis-server on a free port
and kill that one process. Without Redis these tests skip, unless DATALOOK_REQUIRE_ALL=1.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import limits
import pytest
import redis
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from datalook.ratelimit.redis_window import RedisWindowStorage
from datalook.ratelimit.window import retry_after_seconds

SHARED_URL = "redis://127.0.0.1:6379/0"
LIMIT = 500
LOGGER = "datalook.ratelimit.redis_window"


def unavailable(reason: str) -> None:
    """Skip, or fail when the environment demands every test to run."""
    if os.environ.get("DATALOOK_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (DATALOOK_REQUIRE_ALL=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def shared_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        unavailable(f"shared Redis at {SHARED_URL} not reachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"datalook:test:{uuid.uuid4().hex}:"


@pytest.fixture
def store(shared_client: redis.Redis, prefix: str) -> Iterator[RedisWindowStorage]:
    storage = RedisWindowStorage("datalook+redis://127.0.0.1:6379/0", key_prefix=prefix)
    yield storage
    storage.reset()  # deletes only keys under this test's prefix
    storage.close()
    assert not list(shared_client.scan_iter(match=prefix + "*"))


def test_registered_schemes(shared_client: redis.Redis, prefix: str) -> None:
    for url in ("datalook+redis://127.0.0.1:6379/0", "datalook+rediss://127.0.0.1:6379/0"):
        assert isinstance(storage_from_string(url, key_prefix=prefix), RedisWindowStorage)


def test_limit_and_window_stats(
    store: RedisWindowStorage, shared_client: redis.Redis, prefix: str
) -> None:
    limiter = MovingWindowRateLimiter(store)
    item = limits.parse("500 per 10 seconds")
    assert sum(limiter.hit(item, "k") for _ in range(600)) == LIMIT
    assert not limiter.test(item, "k")
    stats = limiter.get_window_stats(item, "k")
    assert stats.remaining == 0
    assert 0 < retry_after_seconds(stats.reset_time, time.time()) <= 10
    # O(limit) and self-expiring: refused hits add nothing, the key carries a TTL.
    key = prefix + item.key_for("k")
    assert shared_client.llen(key) == LIMIT
    assert 0 < shared_client.pttl(key) <= 10_000
    limiter.clear(item, "k")
    assert limiter.get_window_stats(item, "k").remaining == LIMIT


def test_cost_and_oversized_hits(store: RedisWindowStorage) -> None:
    assert not store.acquire_entry("k", 10, 60, amount=11)
    assert store.acquire_entry("k", 10, 60, amount=4)
    assert store.acquire_entry("k", 10, 60, amount=6)
    assert not store.acquire_entry("k", 10, 60)
    assert store.get_moving_window("k", 10, 60)[1] == 10


def test_window_rolls_on_server_time(store: RedisWindowStorage) -> None:
    # The server's clock cannot be faked, so this one waits a real second.
    assert sum(store.acquire_entry("k", 3, 1) for _ in range(5)) == 3
    oldest, count = store.get_moving_window("k", 3, 1)
    assert count == 3
    time.sleep(max(0.0, oldest + 1 - time.time()) + 0.05)
    assert store.get_moving_window("k", 3, 1)[1] == 0
    assert sum(store.acquire_entry("k", 3, 1) for _ in range(5)) == 3


def test_uses_server_clock(shared_client: redis.Redis, prefix: str) -> None:
    """Hosts whose clocks disagree by two hours still share one exact window."""
    ahead = RedisWindowStorage(
        SHARED_URL.replace("redis", "datalook+redis", 1),
        key_prefix=prefix,
        clock=lambda: time.time() + 3600,
    )
    behind = RedisWindowStorage(
        SHARED_URL.replace("redis", "datalook+redis", 1),
        key_prefix=prefix,
        clock=lambda: time.time() - 3600,
    )
    try:
        accepted = 0
        for i in range(30):
            accepted += (ahead if i % 2 else behind).acquire_entry("k", 20, 10)
        assert accepted == 20
        # Stored stamps are the server's TIME, not either host's clock.
        secs, micros = shared_client.time()
        stamp = int(shared_client.lindex(prefix + "k", 0))
        assert abs(stamp / 1e6 - (secs + micros / 1e6)) < 5
        # Reported on each host's own clock, so its Retry-After arithmetic stays right.
        for host, offset in ((ahead, 3600), (behind, -3600)):
            oldest, count = host.get_moving_window("k", 20, 10)
            assert count == 20
            assert abs(oldest - (time.time() + offset)) < 5
            wait = retry_after_seconds(oldest + 10, host.clock())
            assert 5 <= wait <= 11
    finally:
        ahead.reset()


def test_threads_share_exactly(store: RedisWindowStorage) -> None:
    results: list[int] = []
    start = threading.Barrier(16)

    def hammer() -> None:
        start.wait()
        results.append(sum(store.acquire_entry("k", LIMIT, 60) for _ in range(60)))

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == LIMIT
    assert not store.degraded


def _hammer_process(prefix: str, attempts: int, barrier: object, results: object) -> None:
    """Child process body: one app instance hitting the shared key."""
    store = storage_from_string("datalook+redis://127.0.0.1:6379/0", key_prefix=prefix)
    barrier.wait()  # type: ignore[attr-defined]
    results.put(sum(store.acquire_entry("k", LIMIT, 60) for _ in range(attempts)))  # type: ignore[attr-defined]


def test_processes_share_exactly(store: RedisWindowStorage, prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer_process, args=(prefix, 400, barrier, results)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    counts = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sum(counts) == LIMIT
    assert store.get_moving_window("k", LIMIT, 60)[1] == LIMIT


def test_fixed_window_members(store: RedisWindowStorage) -> None:
    assert store.get("c") == 0
    assert store.incr("c", 10) == 1
    assert store.incr("c", 10, amount=2) == 3
    assert store.get("c") == 3
    assert 0 < store.get_expiry("c") - time.time() <= 10
    store.clear("c")
    assert store.get("c") == 0


# -- outages, on a private server --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A throwaway redis-server that this test owns and may kill."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"datalook+redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"private redis-server on {self.port} did not start"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # only the server this test started, by its own handle
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server binary not found")
    server = PrivateRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_outage_falls_back_and_recovers(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store = RedisWindowStorage(private_redis.url, retry_interval=0.2)
    limiter = MovingWindowRateLimiter(store)
    item = limits.parse("5 per 10 seconds")
    assert store.check()
    assert sum(limiter.hit(item, "before") for _ in range(3)) == 3

    private_redis.kill()
    # No exception escapes; the per-process window is exact on its own.
    assert sum(limiter.hit(item, "during") for _ in range(8)) == 5
    assert not limiter.test(item, "during")
    assert limiter.get_window_stats(item, "during").remaining == 0
    assert store.degraded
    assert not store.check()
    # Keep calling past several retry intervals: still one loud line for the whole outage.
    deadline = time.monotonic() + 0.7
    while time.monotonic() < deadline:
        limiter.hit(item, "during")
        time.sleep(0.05)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "unreachable" in errors[0].getMessage()

    private_redis.start()  # same port, empty server (scripts must be loaded again)
    time.sleep(0.25)  # let the retry interval pass
    assert limiter.hit(item, "after")
    assert not store.degraded
    assert store.check()
    assert any(
        r.levelno == logging.WARNING and "reachable again" in r.getMessage() for r in caplog.records
    )
    assert sum(limiter.hit(item, "after") for _ in range(10)) == 4


def test_unreachable_from_the_start(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    store = RedisWindowStorage(f"datalook+redis://127.0.0.1:{free_port()}/0", retry_interval=3600)
    probes = []
    should_try = store._should_try_redis
    monkeypatch.setattr(
        store, "_should_try_redis", lambda: probes.append(should_try()) or probes[-1]
    )
    assert sum(store.acquire_entry("k", 5, 10) for _ in range(50)) == 5
    assert store.get_moving_window("k", 5, 10)[1] == 5
    assert store.incr("c", 10) == 1
    # Refused connections are not retried on every call: one probe per retry interval.
    assert probes.count(True) == 1 and len(probes) == 52
    assert store.degraded
    assert not store.check()
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
