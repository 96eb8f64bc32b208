"""The demo seed's background preparation: a forked child's items, in order, and its
failures raised in the parent."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from datalook.cli.demo_background import in_background


def _pids(n: int):
    """n items, each naming the process that made it."""
    for k in range(n):
        yield (k, os.getpid())


def test_items_come_in_order_from_another_process():
    got = list(in_background(lambda: _pids(7), ahead=2))
    assert [k for k, _ in got] == list(range(7))
    assert {pid for _, pid in got} != {os.getpid()}


def _fails_after_two():
    """Two items, then a failure."""
    yield 1
    yield 2
    raise ValueError("no more")


def test_a_failure_in_the_child_is_raised_after_the_items_before_it():
    got = []
    with pytest.raises(RuntimeError, match="ValueError"):
        for item in in_background(_fails_after_two):
            got.append(item)
    assert got == [1, 2]


def test_a_caller_that_stops_early_ends_the_child():
    items = in_background(lambda: iter(range(1_000_000)), ahead=1)
    assert next(items) == 0
    assert multiprocessing.active_children()
    items.close()
    assert not multiprocessing.active_children()  # terminated and joined
