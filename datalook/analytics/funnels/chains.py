"""Funnel chains followed for every start at once, over the visitors' matching rows.

The rows are sorted by visitor, then time and id; `mask` holds each row's step bits (bit
k for step k + 1) and `group` numbers the visitors from 0. A chain starts at a step-1 row
and takes, step after step and within the window of its start, the visitor's next row
matching the step (ordered mode: the earliest is never worse) or the visitor's very next
row if it matches the step (strict mode). Visitors with two matching rows at one instant
are left to matching's Python, which orders such ties (`tied_rows`, `tied_events`). Used
by the unsaved report (store_match) and by a saved funnel's staged rows (settled_rows).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


class Chains(NamedTuple):
    """Per chain (in the order of its start): its visitor, the steps it reached and, per
    step, the row it took there (-1 where it did not reach the step)."""

    who: np.ndarray
    depth: np.ndarray
    picked: list[np.ndarray]


def tied_rows(at: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per row: whether its visitor has two matching rows at one instant."""
    if not len(group):
        return np.zeros(0, dtype=bool)
    same = (at[1:] == at[:-1]) & (group[1:] == group[:-1])
    marked = np.zeros(int(group[-1]) + 1, dtype=bool)  # groups number from 0 up
    marked[group[1:][same]] = True
    return marked[group]


def follow(
    at: np.ndarray,
    mask: np.ndarray,
    group: np.ndarray,
    starts: np.ndarray,
    steps: int,
    window: timedelta,
    strict: bool = False,
) -> Chains:
    """The chains that start at the rows `starts` (step-1 rows, in time order per
    visitor), followed through `steps` steps (see the module's docstring)."""
    who = group[starts]
    deadline = at[starts] + window // _MICROSECOND
    depth = np.ones(len(starts), dtype=np.int64)
    picked = [starts]
    live, current = np.arange(len(starts)), starts  # the chains still going on
    for k in range(1, steps):
        step = np.full(len(starts), -1, dtype=np.int64)
        picked.append(step)
        if not len(live):
            continue
        if strict:  # the very next row
            following = np.minimum(current + 1, len(at) - 1)
            going = following > current
        else:  # the next row matching the step
            positions = np.flatnonzero(mask & (1 << k) != 0)
            if not len(positions):
                live = live[:0]
                continue
            after = np.searchsorted(positions, current, side="right")
            going = after < len(positions)
            following = positions[np.minimum(after, len(positions) - 1)]
        going &= (group[following] == who[live]) & (at[following] <= deadline[live])
        going &= mask[following] & (1 << k) != 0
        live, current = live[going], following[going]
        depth[live] += 1
        step[live] = current
    return Chains(who, depth, picked)


def tied_events(
    chosen: np.ndarray,
    group: np.ndarray,
    at: np.ndarray,
    seq: np.ndarray,
    mask: np.ndarray,
    values: list,
) -> dict[str, list[tuple]]:
    """The rows `chosen` by visitor (`group` as text), as matching takes them: (time, id,
    mask, value), `values` being the chosen rows' values (None where unknown)."""
    grouped: dict[str, list[tuple]] = defaultdict(list)
    for who, moment, event_id, bits, value in zip(
        group[chosen].tolist(),
        at[chosen].tolist(),
        seq[chosen].tolist(),
        mask[chosen].tolist(),
        values,
        strict=True,
    ):
        grouped[str(who)].append((_EPOCH + moment * _MICROSECOND, event_id, bits, value))
    return grouped
