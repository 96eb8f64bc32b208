"""Items of an iterator computed in a forked child process, a few ahead (`flask demo seed`).

Generating the demo events, turning them into rows and deriving their sessions costs about
as much as writing, folding and filing them: the seed's writer takes ready chunks from a
child that prepares the next ones meanwhile, so that a second core does half the work.
The child only computes (it never touches the database the parent has open) and is
forked, so that it starts at once with the parent's code and settings; where fork is not
available, the items are computed in turn.
"""

from __future__ import annotations

import multiprocessing
import queue as queues
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
AHEAD = 2  # items ready in advance (each a chunk of rows: memory, not speed, bounds it)
POLL_S = 1.0
_ITEM, _DONE, _FAILED = "item", "done", "failed"


def in_background(make: Callable[[], Iterator[T]], ahead: int = AHEAD) -> Generator[T, None, None]:
    """The items of `make()`, computed in a forked child while the caller uses the ones
    before; the child's failure is raised here (RuntimeError), and a caller that stops
    early ends the child."""
    if "fork" not in multiprocessing.get_all_start_methods():
        yield from make()
        return
    context = multiprocessing.get_context("fork")
    channel = context.Queue(maxsize=ahead)
    child = context.Process(target=_produce, args=(make, channel), daemon=True)
    child.start()
    try:
        while True:
            try:
                kind, item = channel.get(timeout=POLL_S)
            except queues.Empty:
                # A child that has exited flushed everything it sent before it did.
                if not child.is_alive():
                    raise RuntimeError(
                        f"the process preparing the items stopped (exit code {child.exitcode})"
                    ) from None
                continue
            if kind == _DONE:
                return
            if kind == _FAILED:
                raise RuntimeError(f"preparing the items failed: {item}")
            yield item
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        channel.close()


def _produce(make: Callable[[], Iterator], channel) -> None:
    """The child's work: send every item, then that it is done (or how it failed)."""
    try:
        for item in make():
            channel.put((_ITEM, item))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        channel.put((_FAILED, repr(error)))
        return
    channel.put((_DONE, None))
