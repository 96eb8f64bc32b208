"""A worker's first view of unsaved funnels and journeys: `python -m bench.first_views
--instance DIR` (a folder seeded as bench.analytics seeds it, copied first: a worker's
start writes to it).

Each view runs in a process of its own that does what a server worker does before its
first request (creates the app, then lifecycle.worker_started) and then answers one view
exactly as the JSON endpoint does (funnel.json: parse, unsaved_answer, the JSON; and
journeys.json: parse, the sessions' catch-up, top_journeys), so nothing of the view is
cached in the process; the process then answers the same view again (`again_ms`: what a
process that has seen it pays). Unsaved funnels: bench.analytics's first-view definitions
(its 4 steps, every other one without the last, each with another window), over Last 30
days on the large site. Journeys: Last 30 days, then other ranges. No HTTP: the figures
are the app's own (bench.analytics times the same over HTTP). p50 and p99 of the first
views, with the commit and the load average beside them; written to
bench/results/first_views.json. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from bench.analytics import BIG, FIRST_VIEW_MS, first_view_urls, run_python
from bench.report import git_commit
from bench.servers import ROOT

RESULTS = ROOT / "bench" / "results" / "first_views.json"
JOURNEY_RANGES = ["30d", "7d", "90d", "last-month", "month"]
JOURNEYS_MS = 1000.0  # the journeys' first view of a range: target

# One view in this process, as a worker that has just started answers it.
_ONE_VIEW = """
import json, sys, time
from urllib.parse import parse_qsl
from werkzeug.datastructures import MultiDict
from datalook.app import create_app
from datalook.lifecycle import worker_started
app = create_app()
worker_started(app)
from datalook.analytics import freshness, journeys, query
from datalook.analytics.funnels import unsaved
from datalook.extensions import db
from datalook.models import Site
what, args = sys.argv[1], MultiDict(parse_qsl(sys.argv[2]))

def view(site):
    if what == "funnel":
        asked = query.parse(site, args, "funnel")
        found = unsaved.unsaved_answer(
            db.session(), site.id, asked.steps, asked.range, freshness.report_deadline()
        )
        return found.as_json(site.currency)
    asked = query.parse(site, args, "journeys")
    freshness.catch_up_sessions(db.session(), freshness.report_deadline())
    return journeys.top_journeys(db.session(), site.id, asked.range, asked.journey_query)

times = []
with app.app_context():
    site = db.session.execute(db.select(Site).where(Site.domain == sys.argv[3])).scalar_one()
    for _ in range(2):
        db.session.rollback()  # a request's own session
        started = time.perf_counter()
        answer = view(site)
        times.append((time.perf_counter() - started) * 1000)
print(json.dumps({"first_ms": times[0], "again_ms": times[1], "answer": answer}, default=str))
"""


def one_view(env: dict[str, str], what: str, args: str) -> dict:
    """Time one view (and its repetition) in a fresh process."""
    return json.loads(run_python(env, _ONE_VIEW, what, args, BIG).strip().splitlines()[-1])


def _figures(views: list[dict], target: tuple[float, float]) -> dict:
    """p50 and p99 (ms) of the first views (and of the views again), with the target."""
    first = sorted(v["first_ms"] for v in views)
    again = sorted(v["again_ms"] for v in views)
    p99 = first[min(len(first) - 1, round(0.99 * (len(first) - 1)))]
    return {
        "p50_ms": round(statistics.median(first), 1),
        "p99_ms": round(p99, 1),
        "again_p50_ms": round(statistics.median(again), 1),
        "n": len(first),
        "target_p50_ms": target[0],
        "target_p99_ms": target[1],
        "each_ms": [round(v["first_ms"], 1) for v in views],
    }


def funnel_args(n: int) -> list[str]:
    """The query strings of bench.analytics's n first-view funnels (its warm-up one left
    out: none is warmed up here)."""
    return [url.split("?", 1)[1] for url in first_view_urls("", n)[1:]]


def journey_args(n: int) -> list[str]:
    """n journeys views: Last 30 days first, then other ranges, in turn."""
    return [urlencode({"period": JOURNEY_RANGES[i % len(JOURNEY_RANGES)]}) for i in range(n)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=Path, required=True, help="a seeded instance folder")
    parser.add_argument("--funnels", type=int, default=10, help="unsaved funnels' first views")
    parser.add_argument("--journeys", type=int, default=5, help="journeys' first views")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON result file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time the first views; print the figures and write the JSON file; 0 if targets pass."""
    options = parse_args(argv)
    env = {**os.environ, "DATALOOK_INSTANCE_PATH": str(options.instance.resolve())}
    env.pop("DATABASE_URL", None)
    kept = options.instance / "database_url"  # a PostgreSQL instance of bench.analytics
    if kept.exists():
        env["DATABASE_URL"] = kept.read_text().strip()
    results: dict = {"commit": git_commit(), "load_before": os.getloadavg(), "rows": {}}
    started = time.monotonic()
    plans = {
        "unsaved funnel, first view": ("funnel", funnel_args(options.funnels), FIRST_VIEW_MS),
        "journeys, first view of a range": (
            "journeys",
            journey_args(options.journeys),
            (JOURNEYS_MS, JOURNEYS_MS),
        ),
    }
    ok = True
    for name, (what, queries, target) in plans.items():
        if not queries:
            continue
        views = [one_view(env, what, args) for args in queries]
        figures = _figures(views, target)
        figures["queries"] = [dict(parse_qsl(q)) for q in queries]
        results["rows"][name] = figures
        met = figures["p50_ms"] <= target[0] and figures["p99_ms"] <= target[1]
        ok &= met
        print(
            f"{name:<34} p50 {figures['p50_ms']:8.1f} ms  p99 {figures['p99_ms']:8.1f} ms"
            f"  (again {figures['again_p50_ms']:.1f} ms)  target p50 <= {target[0]:.0f},"
            f" p99 <= {target[1]:.0f}: {'ok' if met else 'MISS'}",
            flush=True,
        )
    results["load_after"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - started, 1)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2))
    print(f"commit {results['commit']}, load {results['load_before']} -> {results['load_after']}")
    print(f"Written to {options.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
