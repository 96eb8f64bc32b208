"""Where an event's CPU goes inside the app, by part: `python -m bench.ingest_cost --parts`.

The scenario runs once under cProfile with a CPU clock (so other jobs on the machine do not
count), and each part's share of the request's profiled time is its functions' cumulative
time (the functions of PARTS nest in none of each other). A profile slows Python calls far
more than C ones, so the shares are applied to the scenario's CPU per event measured
without the profiler: the figures are estimates that add up to the measured total.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable

# Each part of the ingestion path: (file suffix, function name) of the functions whose
# cumulative time is that part's. "other" is the rest: the WSGI request and answer,
# werkzeug's Request, the pipeline's own code, the limit headers.
PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "read the body (JSON)": (
        ("datalook/ingest/body.py", "read_body"),
        ("datalook/ingest/body.py", "parse_json"),
    ),
    "authentication": (("datalook/keys/authentication.py", "authenticate"),),
    "rate-limit window": (("datalook/ratelimit/rules.py", "spend"),),
    # A batch of usual events is decoded with its validation (typed_batch.events): its JSON
    # decoding counts here, not under reading the body.
    "validation, PII": (
        ("datalook/ingest/quick.py", "validate_one"),
        ("datalook/ingest/typed_batch.py", "events"),
    ),
    "acquisition columns": (("datalook/ingest/arrivals.py", "derive_events"),),
    "row binding": (("datalook/ingest/storage.py", "_prepare"),),
    "writers' lock": (
        ("datalook/sql/connections.py", "__enter__"),
        ("datalook/sql/connections.py", "__exit__"),
    ),
    "insert": (("datalook/ingest/storage.py", "_run"),),
    "commit": (("~", "<method 'commit' of 'sqlite3.Connection' objects>"),),
}
# The whole request: the app's WSGI entry.
_TOTAL = ("datalook/ingest/app.py", "__call__")


def profiled(run: Callable[[], object]) -> pstats.Stats:
    """Run `run` under cProfile timed by this thread's CPU clock."""
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    run()
    profiler.disable()
    return pstats.Stats(profiler)


def shares(stats: pstats.Stats) -> dict[str, float]:
    """Each part's share of the profiled requests' time (and "other", the rest)."""
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        for suffix, wanted in (*(f for fs in PARTS.values() for f in fs), _TOTAL):
            if name == wanted and filename.endswith(suffix):
                # The outermost of same-named functions (the dispatcher's __call__).
                cumulative[(suffix, wanted)] = max(cumulative.get((suffix, wanted), 0), entry[3])
    total = cumulative.get(_TOTAL, 0.0)
    if not total:
        raise RuntimeError("the profile holds no request")
    found = {
        part: sum(cumulative.get(f, 0.0) for f in functions) for part, functions in PARTS.items()
    }
    found["other (WSGI, request, answer, glue)"] = total - sum(found.values())
    return {part: seconds / total for part, seconds in found.items()}


def report(kind: str, per_event_us: float, found: dict[str, float], unit: str) -> None:
    """Print a scenario's µs of CPU per event (or request) by part."""
    print(f"{kind}: {per_event_us:.1f} us of CPU per {unit}, by part (profile shares)")
    for part, share in found.items():
        print(f"  {part:38} {share * per_event_us:7.1f} us  {share:6.1%}")
