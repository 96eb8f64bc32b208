"""Timings of single operations in isolation (a benchmark's, not the product's, code)."""

from __future__ import annotations

import math
import statistics
import time
import uuid

from limits.storage import MovingWindowSupport

from datalook.keys import tokens
from datalook.ratelimit.window import US_PER_SECOND
from datalook.snippets.render import render


def measure_check_cost(
    storage: MovingWindowSupport,
    n: int = 2000,
    limit: int = 500,
    expiry: int = 10,
    keys: int = 64,
) -> dict[str, float]:
    """Time ``n`` acquire_entry calls and return mean/p50/p99/max in microseconds.

    Hits are spread over ``keys`` throwaway keys so that most of them take the accepting
    (writing) path, the expensive one; the keys are cleared afterwards.
    """
    run = uuid.uuid4().hex[:12]
    names = [f"bench/{run}/{i}" for i in range(keys)]
    samples: list[float] = []
    accepted = 0
    try:
        for i in range(n):
            start = time.perf_counter()
            ok = storage.acquire_entry(names[i % keys], limit, expiry)
            samples.append((time.perf_counter() - start) * US_PER_SECOND)
            accepted += ok
    finally:
        for name in names:
            storage.clear(name)  # type: ignore[attr-defined]
    samples.sort()
    return {
        "n": float(n),
        "accepted": float(accepted),
        "mean_us": statistics.fmean(samples),
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[min(len(samples) - 1, math.ceil(len(samples) * 0.99) - 1)],
        "max_us": samples[-1],
    }


def measure_render_cost(
    n: int = 200, endpoint_url: str = "https://datalook.example/event"
) -> dict[str, float]:
    """Time `render()` of all snippets with a fresh token after warm-up, in microseconds."""
    render(endpoint_url, None)  # Warm-up: fills the highlight cache for this URL.
    samples = []
    for _ in range(n):
        token = tokens.generate().token
        start = time.perf_counter()
        render(endpoint_url, token)
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return {
        "n": n,
        "mean_us": statistics.fmean(samples),
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }
