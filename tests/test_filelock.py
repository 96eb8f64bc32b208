"""The cross-process write lock: exclusive across threads and processes, from the first use."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from datalook.sql.filelock import WriteLock


def test_threads_racing_the_first_use_stay_exclusive(tmp_path: Path) -> None:
    for attempt in range(20):  # the race is on the first use: a fresh lock each time
        lock = WriteLock(str(tmp_path / f"race{attempt}.lock"))
        start = threading.Barrier(8)
        inside: list[int] = []
        overlaps: list[int] = []

        def enter(lock: WriteLock = lock, start=start, inside=inside, overlaps=overlaps) -> None:
            start.wait()
            with lock.hold():
                inside.append(1)
                overlaps.append(len(inside))
                time.sleep(0.001)
                inside.pop()

        threads = [threading.Thread(target=enter) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert max(overlaps) == 1 and len(overlaps) == 8


def _hold_and_report(path: str, held, release) -> None:
    with WriteLock(path).hold():
        held.set()
        release.wait(10)


def test_another_process_waits_for_the_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "cross.lock")
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_and_report, args=(path, held, release))
    holder.start()
    assert held.wait(30)
    got_it = threading.Event()

    def take() -> None:
        with WriteLock(path).hold():
            got_it.set()

    waiter = threading.Thread(target=take)
    waiter.start()
    assert not got_it.wait(0.3)  # blocked while the other process holds it
    release.set()
    assert got_it.wait(10)
    waiter.join()
    holder.join(10)


def test_an_error_inside_releases_the_lock(tmp_path: Path) -> None:
    lock = WriteLock(str(tmp_path / "error.lock"))
    try:
        with lock.hold():
            raise ValueError("inside")
    except ValueError:
        pass
    done = threading.Event()
    thread = threading.Thread(target=lambda: (lock.__enter__(), lock.__exit__(), done.set()))
    thread.start()
    assert done.wait(5)
