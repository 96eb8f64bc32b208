"""HyperLogLog sketches of visitor ids (Apache DataSketches, lg_k=14: about 0.8% error)."""

from __future__ import annotations

from collections.abc import Iterable

import datasketches as ds

LG_K = 14
_TYPE = ds.tgt_hll_type.HLL_4


def new() -> ds.hll_sketch:
    """An empty sketch."""
    return ds.hll_sketch(LG_K, _TYPE)


def load(data: bytes) -> ds.hll_sketch:
    """A sketch from its stored bytes."""
    return ds.hll_sketch.deserialize(bytes(data))


def dump(sketch: ds.hll_sketch) -> bytes:
    """The compact bytes of a sketch."""
    return sketch.serialize_compact()


def estimate(stored: list[bytes], extra_ids: Iterable[str] = ()) -> int:
    """Estimated distinct visitors of stored sketches and raw ids (the partial hours of a
    range), rounded."""
    extra = list(extra_ids)
    if not extra and len(stored) <= 1:  # nothing to merge
        return round(load(stored[0]).get_estimate()) if stored else 0
    union = ds.hll_union(LG_K)
    for data in stored:
        union.update(load(data))
    if extra:
        loose = new()
        for visitor in extra:
            loose.update(visitor)
        union.update(loose)
    return round(union.get_estimate())


def union_of(
    stored: list[bytes], extra_ids: Iterable[str] = (), base: ds.hll_sketch | None = None
) -> ds.hll_sketch | None:
    """One sketch of `base`, the stored sketches and raw ids (None if all are empty); kept
    as HLL_8, the union's own form, so that merging it again loses nothing."""
    extra = list(extra_ids)
    if not stored and not extra:
        return base
    merged = ds.hll_union(LG_K)
    if base is not None:
        merged.update(base)
    for data in stored:
        merged.update(load(data))
    if extra:
        loose = new()
        for visitor in extra:
            loose.update(visitor)
        merged.update(loose)
    return merged.get_result(ds.tgt_hll_type.HLL_8)


def estimate_with(base: ds.hll_sketch | None, stored: list[bytes], extra_ids: Iterable[str]) -> int:
    """Like ``estimate``, with an already merged sketch (of a settled past) beside them."""
    if base is None:
        return estimate(stored, extra_ids)
    merged = ds.hll_union(LG_K)
    merged.update(base)
    for data in stored:
        merged.update(load(data))
    extra = list(extra_ids)
    if extra:
        loose = new()
        for visitor in extra:
            loose.update(visitor)
        merged.update(loose)
    return round(merged.get_estimate())


def of_ids(ids: Iterable[str]) -> bytes:
    """The stored bytes of a sketch of these ids."""
    sketch = new()
    for visitor in ids:
        sketch.update(visitor)
    return dump(sketch)


def union(stored: list[bytes]) -> bytes:
    """One stored sketch holding every id of the given ones (HLL unions lose nothing: the
    union of the hour sketches of a day is the sketch of the day's ids)."""
    merged = ds.hll_union(LG_K)
    for data in stored:
        merged.update(load(data))
    return dump(merged.get_result(_TYPE))


def combine(old: bytes | None, fresh: ds.hll_sketch) -> bytes:
    """Fold a sketch into a stored one (None: nothing stored yet)."""
    if old is None:
        return dump(fresh)
    union = ds.hll_union(LG_K)
    union.update(load(old))
    union.update(fresh)
    return dump(union.get_result(_TYPE))
