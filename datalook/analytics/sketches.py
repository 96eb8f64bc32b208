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


def merged(stored: Iterable[bytes], extra_ids: Iterable[str] = ()) -> ds.hll_sketch:
    """The union of stored sketches, plus raw visitor ids (the partial hours of a range)."""
    union = ds.hll_union(LG_K)
    for data in stored:
        union.update(load(data))
    loose = new()
    for visitor in extra_ids:
        loose.update(visitor)
    union.update(loose)
    return union.get_result(_TYPE)


def estimate(stored: Iterable[bytes], extra_ids: Iterable[str] = ()) -> int:
    """Estimated distinct visitors of stored sketches and raw ids, rounded."""
    return round(merged(stored, extra_ids).get_estimate())


def combine(old: bytes | None, fresh: ds.hll_sketch) -> bytes:
    """Fold a sketch into a stored one (None: nothing stored yet)."""
    if old is None:
        return dump(fresh)
    union = ds.hll_union(LG_K)
    union.update(load(old))
    union.update(fresh)
    return dump(union.get_result(_TYPE))
