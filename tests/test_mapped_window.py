"""The embedded default rate-limit storage: a moving window in a memory-mapped file.

Its exactness table is shared with the other storages (test_ratelimit_storage.py); here are
what only a shared file has: several processes and threads deciding on one budget, the file's
geometry, slot reuse, a full table, compaction beyond the ring's capacity, and a torn slot.
"""

from __future__ import annotations

import multiprocessing
import struct
import threading
from pathlib import Path

import pytest
from limits.errors import ConfigurationError

from datalook.ratelimit.mapped import (
    _SLOT,
    MappedWindowStorage,
    WindowTableFull,
    _digest,
    _file_size,
)
from datalook.ratelimit.memory import MemoryWindow

EXPIRY = 10


class FakeClock:
    """A settable clock: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def uri(path: Path) -> str:
    return f"datalook+mmap:///{path}"


def _hammer(path: str, attempts: int, results) -> None:
    """Child process: try `attempts` hits on one shared key, report how many passed."""
    store = MappedWindowStorage(uri(Path(path)))
    results.put(sum(store.acquire_entry("shared", 500, 3600) for _ in range(attempts)))


def test_processes_share_one_exact_budget(tmp_path: Path) -> None:
    path = str(tmp_path / "rl.window")
    context = multiprocessing.get_context("spawn")  # fresh interpreters, no inherited state
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(path, 300, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    accepted = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(accepted) == 500  # 1200 attempts, exactly the limit accepted


def _use_inherited(store: MappedWindowStorage, results) -> None:
    results.put(sum(store.acquire_entry("k", 10, 3600) for _ in range(10)))


def test_forked_child_shares_the_parents_mapping(tmp_path: Path) -> None:
    store = MappedWindowStorage(uri(tmp_path / "rl.window"))
    assert sum(store.acquire_entry("k", 10, 3600) for _ in range(4)) == 4
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_use_inherited, args=(store, results))
    child.start()
    assert results.get(timeout=30) == 6  # the parent's 4 hits count in the child
    child.join(timeout=30)
    assert not store.acquire_entry("k", 10, 3600)


def test_threads_share_one_exact_budget(tmp_path: Path) -> None:
    store = MappedWindowStorage(uri(tmp_path / "rl.window"))
    accepted: list[int] = []

    def hammer() -> None:
        accepted.append(sum(store.acquire_entry("t", 100, 3600) for _ in range(60)))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 100


def test_state_survives_reopening(tmp_path: Path) -> None:
    clock = FakeClock()
    first = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock)
    assert sum(first.acquire_entry("k", 5, EXPIRY) for _ in range(3)) == 3
    second = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock)
    assert sum(second.acquire_entry("k", 5, EXPIRY) for _ in range(3)) == 2
    assert second.get_moving_window("k", 5, EXPIRY) == (clock.now, 5)


def test_existing_file_keeps_its_geometry(tmp_path: Path) -> None:
    path = tmp_path / "rl.window"
    MappedWindowStorage(uri(path), slots=8, capacity=4).acquire_entry("k", 1, EXPIRY)
    assert path.stat().st_size == _file_size(8, 4)
    reopened = MappedWindowStorage(uri(path), slots=64, capacity=64)
    assert reopened.acquire_entry("other", 1, EXPIRY)
    assert path.stat().st_size == _file_size(8, 4)


@pytest.mark.parametrize(
    "content",
    [b"not a window file at all" * 10, struct.pack("<8sIII", b"DLWINDOW", 99, 1, 2)],
    ids=["foreign file", "unknown version"],
)
def test_foreign_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "rl.window"
    path.write_bytes(content)
    store = MappedWindowStorage(uri(path))
    assert store.check() is False
    with pytest.raises(ConfigurationError, match="not a DataLook rate-limit window file"):
        store.acquire_entry("k", 1, EXPIRY)
    assert path.read_bytes() == content  # left as found


@pytest.mark.parametrize(
    ("link", "options", "message"),
    [
        ("datalook+mmap:///relative.window", {}, "absolute path"),
        ("datalook+sqlite:////x.db", {}, "not a datalook\\+mmap URI"),
        ("datalook+mmap:////x.window", {"bogus": 1}, "unknown"),
        ("datalook+mmap:////x.window", {"slots": 0}, "slots"),
        ("datalook+mmap:////x.window", {"capacity": 1}, "capacity"),
    ],
)
def test_bad_configuration_refused(link: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MappedWindowStorage(link, **options)


def test_idle_slots_are_reused(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock, slots=4)
    for name in "abcd":
        assert store.acquire_entry(name, 1, EXPIRY)
    assert store.active_keys() == 4
    clock.now += EXPIRY  # every window has passed: the slots are free again
    assert store.active_keys() == 0
    for name in "efgh":
        assert store.acquire_entry(name, 1, EXPIRY)
        assert not store.acquire_entry(name, 1, EXPIRY)
    assert store.active_keys() == 4
    assert store.evictions == 0  # idle slots were reused: nothing active was evicted


def test_full_table_evicts_the_least_recently_hit_key(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MappedWindowStorage(uri(tmp_path / "rl.window"), slots=2, clock=clock)
    assert store.acquire_entry("a", 1, EXPIRY)
    clock.now += 1
    assert store.acquire_entry("b", 1, EXPIRY)
    clock.now += 1
    # The table is full of active keys: the newcomer is limited, never let through unlimited.
    assert store.acquire_entry("c", 1, EXPIRY)
    assert not store.acquire_entry("c", 1, EXPIRY)
    assert store.evictions == 1
    assert not store.acquire_entry("b", 1, EXPIRY)  # the more recent key kept its window
    assert store.acquire_entry("a", 1, EXPIRY)  # "a" was evicted: its window starts afresh
    assert issubclass(WindowTableFull, store.base_exceptions)


def test_same_microsecond_hits_share_an_entry(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock, capacity=4)
    # 1000 hits in one instant need one entry: exact although the ring holds only 4.
    assert sum(store.acquire_entry("k", 700, EXPIRY) for _ in range(1000)) == 700
    clock.now += EXPIRY
    assert store.acquire_entry("k", 700, EXPIRY)


@pytest.mark.parametrize(
    ("limit", "capacity"), [(8, 8), (8, 4), (50, 4), (30, 2), (50, 5), (30, 3)]
)
def test_beyond_capacity_never_lenient(tmp_path: Path, limit: int, capacity: int) -> None:
    """Compaction can only make hits count longer: never more than `limit` in any window."""
    clock = FakeClock(0.0)
    store = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock, capacity=capacity)
    exact = MemoryWindow(clock=clock)
    accepted_at: list[float] = []
    exact_total = 0
    for step in range(600):
        clock.now = step * 0.137  # ~73 attempts per 10 s window, irregular spacing
        if store.acquire_entry("k", limit, EXPIRY):
            accepted_at.append(clock.now)
        exact_total += exact.acquire_entry("k", limit, EXPIRY)
    for start in accepted_at:
        in_window = [t for t in accepted_at if start <= t < start + EXPIRY]
        assert len(in_window) <= limit
    if limit <= capacity:
        assert len(accepted_at) == exact_total  # within capacity: exactly the exact answer
    else:
        assert len(accepted_at) <= exact_total  # beyond: stricter, never more lenient


def test_clear_and_reset(tmp_path: Path) -> None:
    store = MappedWindowStorage(uri(tmp_path / "rl.window"))
    for name in ("a", "b"):
        assert store.acquire_entry(name, 1, EXPIRY)
    store.clear("a")
    assert store.acquire_entry("a", 1, EXPIRY)
    assert not store.acquire_entry("b", 1, EXPIRY)
    assert store.reset() == 2
    assert store.acquire_entry("b", 1, EXPIRY)


def test_torn_slot_starts_afresh(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "rl.window"
    store = MappedWindowStorage(uri(path), clock=clock, slots=1, capacity=4)
    assert store.acquire_entry("k", 3, EXPIRY)
    # A process killed mid-write could leave a count the ring cannot hold.
    with path.open("r+b") as raw:
        raw.seek(64 + 16 + 8 + 8 + 4)
        raw.write(struct.pack("<i", 99))
    assert sum(store.acquire_entry("k", 3, EXPIRY) for _ in range(5)) == 3


def test_key_prefix_isolates(tmp_path: Path) -> None:
    path = uri(tmp_path / "rl.window")
    one = MappedWindowStorage(path, key_prefix="one:")
    two = MappedWindowStorage(path, key_prefix="two:")
    assert one.acquire_entry("k", 1, EXPIRY)
    assert two.acquire_entry("k", 1, EXPIRY)
    assert not one.acquire_entry("k", 1, EXPIRY)


def _ring(store: MappedWindowStorage, key: str) -> list[tuple[int, int]]:
    """The key's ring entries, oldest first, as (timestamp us, cost)."""
    view = store._mapped()
    offset = store._find(view, _digest(key), 0, create=False)
    head, count = _SLOT.unpack_from(view, offset)[3:5]
    return [store._entry(view, offset, head, index) for index in range(count)]


@pytest.mark.parametrize("capacity", [4, 5, 8])
def test_compaction_merges_neighbours_of_a_wrapped_ring(tmp_path: Path, capacity: int) -> None:
    clock = FakeClock(0.0)
    store = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock, capacity=capacity)
    for second in (0, 1, 2):
        clock.now = second
        assert store.acquire_entry("k", 10**6, EXPIRY, amount=second + 1)
    # Past 0 and 1's windows: the ring's head moves on, and filling it wraps around the end.
    second = 11.5
    while len(_ring(store, "k")) < capacity:
        clock.now = second
        assert store.acquire_entry("k", 10**6, EXPIRY, amount=int(second))
        second += 1
    full = _ring(store, "k")
    clock.now = second
    assert store.acquire_entry("k", 10**6, EXPIRY, amount=7)
    # Entry 2i merges into entry 2i+1's timestamp; an odd last entry stays; then the new hit.
    expected = [
        (full[i + 1][0], full[i][1] + full[i + 1][1]) if i + 1 < capacity else full[i]
        for i in range(0, capacity, 2)
    ]
    assert _ring(store, "k") == [*expected, (int(second * 1_000_000), 7)]
    assert store.get_moving_window("k", 10**6, EXPIRY)[1] == sum(cost for _, cost in full) + 7


def test_a_sibling_is_a_table_of_its_own_on_the_same_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MappedWindowStorage(uri(tmp_path / "rl.window"), clock=clock, slots=2)
    keys = store.sibling("keys")
    assert store.sibling("keys") is keys
    assert keys.path == str(tmp_path / "rl-keys.window")
    store.acquire_entry("a", 5, EXPIRY)
    store.acquire_entry("b", 5, EXPIRY)
    store.acquire_entry("c", 5, EXPIRY)  # the table is full: "c" evicts "a"
    assert store.evictions == 1
    # The same geometry, but its own slots: a full table beside it takes none of them.
    assert sum(keys.acquire_entry("c", 2, EXPIRY) for _ in range(3)) == 2
    assert keys.acquire_entry("d", 2, EXPIRY)
    # It reads the clock of the storage it sits beside, even one set after it was made.
    later = FakeClock(clock.now + EXPIRY)
    store.clock = later
    assert keys.acquire_entry("c", 2, EXPIRY)
    store.close()
    assert keys._map is None
