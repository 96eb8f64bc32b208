"""Exactness of the moving-window storages: the embedded mapped file and the in-memory
fallback of the Redis storage share the table below (the mapped file's own housekeeping is
in test_mapped_window.py, Redis in test_ratelimit_redis.py).

Time is a fake clock advanced by hand, so boundary cases are exact and nothing sleeps; only
the multi-process tests use the real clock (with a window far longer than the test).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import limits
import pytest
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from datalook.ratelimit.mapped import MappedWindowStorage
from datalook.ratelimit.memory import MemoryWindow
from datalook.ratelimit.window import resolve_storage_uri, retry_after_seconds

LIMIT = 500
EXPIRY = 10

Window = MappedWindowStorage | MemoryWindow


class FakeClock:
    """A settable clock: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mmap_uri(path: Path) -> str:
    return f"datalook+mmap:///{path}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(tmp_path: Path, clock: FakeClock) -> Iterator[MappedWindowStorage]:
    store = MappedWindowStorage(mmap_uri(tmp_path / "ratelimit.window"), clock=clock)
    yield store
    store.close()


# The embedded default (mapped file) and the in-memory fallback of the Redis storage must
# obey the same contract, so the exactness table runs against both.
@pytest.fixture(params=["mmap", "memory-fallback"])
def window(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Window:
    if request.param == "mmap":
        return MappedWindowStorage(f"datalook+mmap:///{tmp_path / 'rl.window'}", clock=clock)
    return MemoryWindow(clock=clock)


# Each case: steps of (clock time, hits attempted, hits expected to be accepted), all on one
# key with 500 per 10 s. The window is (now - 10, now]: an entry made at t stops counting at
# exactly t + 10.
EXACTNESS_CASES: dict[str, list[tuple[float, int, int]]] = {
    "499 in a window": [(0.0, 499, 499), (9.999999, 1, 1), (9.999999, 1, 0)],
    "500 in a window": [(0.0, 500, 500), (9.999999, 1, 0)],
    "501 in a window": [(0.0, 501, 500)],
    "t and exactly t+10": [(100.0, 500, 500), (109.999999, 1, 0), (110.0, 501, 500)],
    "burst straddling a fixed-window boundary": [
        (9.9, 500, 500),
        (10.1, 500, 0),  # a fixed window would accept all 500 here: 1000 in 0.2 s
        (19.899999, 1, 0),
        (19.9, 500, 500),
    ],
    "spread hits expire one by one": [
        (0.0, 250, 250),
        (5.0, 250, 250),
        (9.0, 1, 0),
        (10.0, 251, 250),  # the t=0 batch left, the t=5 batch still counts
        (15.0, 251, 250),
    ],
    "refused hits do not count": [
        (0.0, 500, 500),
        (3.0, 100, 0),
        (6.0, 100, 0),
        (9.999999, 100, 0),
        (10.0, 500, 500),  # a client hammering while refused is not pushed further back
    ],
}


@pytest.mark.parametrize("case", list(EXACTNESS_CASES), ids=list(EXACTNESS_CASES))
def test_exact_moving_window(window: Window, clock: FakeClock, case: str) -> None:
    for at, attempts, expected in EXACTNESS_CASES[case]:
        clock.now = 1_000_000.0 + at
        accepted = sum(window.acquire_entry("k", LIMIT, EXPIRY) for _ in range(attempts))
        assert accepted == expected, f"{case}: at t={at}"


def test_keys_are_independent(window: Window) -> None:
    assert sum(window.acquire_entry("a", 3, EXPIRY) for _ in range(5)) == 3
    assert sum(window.acquire_entry("b", 3, EXPIRY) for _ in range(5)) == 3


def test_cost_greater_than_one(window: Window, clock: FakeClock) -> None:
    assert window.acquire_entry("k", 10, EXPIRY, amount=4)
    assert window.acquire_entry("k", 10, EXPIRY, amount=6)
    assert not window.acquire_entry("k", 10, EXPIRY, amount=1)
    assert window.get_moving_window("k", 10, EXPIRY) == (clock.now, 10)
    # A hit larger than the whole limit can never pass and must not record anything.
    clock.now += EXPIRY
    assert not window.acquire_entry("k", 10, EXPIRY, amount=11)
    assert window.get_moving_window("k", 10, EXPIRY)[1] == 0


def test_get_moving_window_values(window: Window, clock: FakeClock) -> None:
    clock.now = 1.0
    assert window.get_moving_window("k", LIMIT, EXPIRY) == (1.0, 0)
    for _ in range(3):
        window.acquire_entry("k", LIMIT, EXPIRY)
    clock.now = 2.5
    window.acquire_entry("k", LIMIT, EXPIRY, amount=2)
    clock.now = 5.0
    assert window.get_moving_window("k", LIMIT, EXPIRY) == (1.0, 5)  # oldest, not newest
    clock.now = 11.0
    assert window.get_moving_window("k", LIMIT, EXPIRY) == (2.5, 2)
    clock.now = 12.5
    assert window.get_moving_window("k", LIMIT, EXPIRY) == (12.5, 0)


@pytest.mark.parametrize(
    ("reset_time", "now", "expected"),
    [
        (110.0, 103.0, 7),
        (110.3, 103.7, 7),  # 6.6 s rounds up
        (110.0, 109.999, 1),
        (110.0, 110.0, 1),  # never 0
        (100.0, 110.0, 1),  # never negative
        (110.000001, 103.0, 8),
    ],
)
def test_retry_after_seconds(reset_time: float, now: float, expected: int) -> None:
    assert retry_after_seconds(reset_time, now) == expected


@pytest.mark.parametrize(("filled_at", "refused_at"), [(100.0, 103.0), (100.3, 103.7), (9.9, 10.1)])
def test_retry_after_contract(
    storage: MappedWindowStorage, clock: FakeClock, filled_at: float, refused_at: float
) -> None:
    """Refused, wait exactly Retry-After seconds, accepted (and not a second earlier)."""
    limiter = MovingWindowRateLimiter(storage)
    item = limits.parse("500 per 10 seconds")
    clock.now = filled_at
    assert all(limiter.hit(item, "client") for _ in range(LIMIT))
    clock.now = refused_at
    assert not limiter.hit(item, "client")
    wait = retry_after_seconds(limiter.get_window_stats(item, "client").reset_time, clock.now)
    assert wait == math.ceil(filled_at + EXPIRY - refused_at)
    clock.now = refused_at + wait - 1
    assert not limiter.hit(item, "client")
    clock.now = refused_at + wait
    assert limiter.hit(item, "client")


def test_moving_window_rate_limiter_integration(
    storage: MappedWindowStorage, clock: FakeClock
) -> None:
    limiter = MovingWindowRateLimiter(storage)
    item = limits.parse("500 per 10 seconds")
    assert sum(limiter.hit(item, "user", "scope") for _ in range(600)) == LIMIT
    assert not limiter.test(item, "user", "scope")
    stats = limiter.get_window_stats(item, "user", "scope")
    assert stats.remaining == 0
    assert stats.reset_time == clock.now + EXPIRY
    clock.now += 5
    assert limiter.get_window_stats(item, "user", "scope").remaining == 0
    clock.now += 5
    assert limiter.test(item, "user", "scope")
    assert limiter.get_window_stats(item, "user", "scope").remaining == LIMIT
    assert limiter.hit(item, "user", "scope", cost=3)
    assert limiter.get_window_stats(item, "user", "scope").remaining == LIMIT - 3
    limiter.clear(item, "user", "scope")
    assert limiter.get_window_stats(item, "user", "scope").remaining == LIMIT


def test_storage_from_string(tmp_path: Path, clock: FakeClock) -> None:
    store = storage_from_string(mmap_uri(tmp_path / "x.window"), clock=clock)
    assert isinstance(store, MappedWindowStorage)
    assert store.check()
    assert store.acquire_entry("k", 1, EXPIRY)
    assert (tmp_path / "x.window").exists()


@pytest.mark.parametrize(
    "uri",
    ["datalook+mmap:///relative.window", "datalook+mmap://", "datalook+mmap:///"],
)
def test_relative_or_missing_path_rejected(uri: str) -> None:
    with pytest.raises(limits.errors.ConfigurationError, match="absolute path"):
        MappedWindowStorage(uri)


def test_unknown_option_rejected(tmp_path: Path) -> None:
    with pytest.raises(limits.errors.ConfigurationError, match="bogus"):
        MappedWindowStorage(mmap_uri(tmp_path / "x.window"), bogus=1)


def test_fixed_window_members(window: Window, clock: FakeClock) -> None:
    """incr/get/get_expiry are unused by the moving window but must behave."""
    assert window.get("c") == 0
    assert window.get_expiry("c") == clock.now
    assert window.incr("c", EXPIRY) == 1
    assert window.incr("c", EXPIRY, amount=2) == 3
    assert window.get("c") == 3
    assert window.get_expiry("c") == clock.now + EXPIRY
    clock.now += EXPIRY
    assert window.get("c") == 0
    assert window.incr("c", EXPIRY) == 1
    window.clear("c")
    assert window.get("c") == 0


def test_clear_and_reset(storage: MappedWindowStorage) -> None:
    assert storage.acquire_entry("a", 1, EXPIRY)
    assert storage.acquire_entry("b", 1, EXPIRY)
    storage.clear("a")
    assert storage.acquire_entry("a", 1, EXPIRY)
    assert not storage.acquire_entry("b", 1, EXPIRY)
    assert storage.reset() == 2
    assert storage.acquire_entry("b", 1, EXPIRY)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (None, "datalook+mmap:////srv/app/instance/ratelimit.window"),
        ("", "datalook+mmap:////srv/app/instance/ratelimit.window"),
        ("  ", "datalook+mmap:////srv/app/instance/ratelimit.window"),
        ("redis://127.0.0.1:6379/0", "datalook+redis://127.0.0.1:6379/0"),
        ("rediss://:pw@cache:6380/2", "datalook+rediss://:pw@cache:6380/2"),
        ("datalook+redis://h:1/0", "datalook+redis://h:1/0"),
        ("datalook+mmap:////x/y.window", "datalook+mmap:////x/y.window"),
        ("memory://", "memory://"),
    ],
)
def test_resolve_storage_uri(uri: str | None, expected: str) -> None:
    assert resolve_storage_uri(uri, "/srv/app/instance") == expected


@pytest.mark.parametrize(
    "uri",
    ["memcached://h:11211", "mongodb://h", "sqlite:///x.db", "datalook+sqlite:////x.db", "bogus"],
)
def test_resolve_storage_uri_rejects(uri: str) -> None:
    with pytest.raises(ValueError, match="RATELIMIT_STORAGE_URI"):
        resolve_storage_uri(uri, "/srv/app/instance")


def test_resolved_default_is_usable(tmp_path: Path) -> None:
    uri = resolve_storage_uri(None, str(tmp_path / "instance"))
    (tmp_path / "instance").mkdir()
    store = storage_from_string(uri)
    assert isinstance(store, MappedWindowStorage)
    assert store.acquire_entry("k", 1, EXPIRY)
    assert not store.acquire_entry("k", 1, EXPIRY)
