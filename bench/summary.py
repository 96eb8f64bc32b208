"""The figures of `make bench` in one table: `python -m bench.summary`.

Reads what bench.run (bench/results/latest.json), bench.flood (bench/results/flood.json)
and bench.analytics (bench/results/analytics.json) wrote, and prints each figure with its
target, whether it is met, and the commit and load average of the run that measured it.
Exit status 0 when every figure it found meets its target, 1 otherwise, 2 when a result
file is missing.
"""

from __future__ import annotations

import json
import sys

from bench.servers import BENCH

RESULTS = BENCH / "results"


def _load(name: str) -> dict | None:
    """One result file, or None when that benchmark has not run."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _run_rows(run: dict) -> list[tuple[str, str, str, bool, str, str]]:
    """(figure, value, target, met, commit, load) from bench.run's report."""
    checks, scenarios, pairs = run["checks"], run["scenarios"], run["pairs"]
    commit = run["commit"]
    load = "{:.2f} → {:.2f}".format(
        run["machine"]["load_average_before"][0], run["machine"]["load_average_after"][0]
    )
    same_p99 = sorted(pair["same_stack_p99_factor"] for pair in pairs)[len(pairs) // 2]
    event, bare, same = (
        scenarios["event_one_key"],
        scenarios["baseline"],
        scenarios["baseline_same_stack"],
    )
    return [
        (
            "/event as served ÷ bare Flask, nginx + gunicorn sync (req/s)",
            f"{checks['ratio']['value']:.2f} ({event['requests_per_s']:.0f} vs "
            f"{bare['requests_per_s']:.0f})",
            checks["ratio"]["target"],
            checks["ratio"]["pass"],
            commit,
            load,
        ),
        (
            "  its p99 factor",
            f"{checks['p99_factor']['value']:.2f} ({event['p99_ms']:.1f} vs "
            f"{bare['p99_ms']:.1f} ms)",
            checks["p99_factor"]["target"],
            checks["p99_factor"]["pass"],
            commit,
            load,
        ),
        (
            "/event ÷ bare Flask on the same stack (req/s)",
            f"{checks['same_stack_ratio']['value']:.2f} ({same['requests_per_s']:.0f} bare; "
            f"p99 factor {same_p99:.2f})",
            checks["same_stack_ratio"]["target"],
            checks["same_stack_ratio"]["pass"],
            commit,
            load,
        ),
        (
            "POST /events, 100 per request (events/s)",
            f"{checks['batch_events_per_s']['value']:,.0f}",
            checks["batch_events_per_s"]["target"],
            checks["batch_events_per_s"]["pass"],
            commit,
            load,
        ),
    ]


def _flood_rows(flood: dict) -> list[tuple[str, str, str, bool, str, str]]:
    """(figure, value, target, met, commit, load) from bench.flood's report."""
    checks, cpu = flood["checks"], flood["cpu"]
    commit = flood["commit"]
    load = f"{flood['load_before'][0]:.2f} → {flood['load_after'][0]:.2f}"
    bare = cpu["bare"]["server_us_per_request"]
    rows = []
    for kind, what in (("over_limit", "429 over the limit"), ("wrong_secret", "401 wrong secret")):
        check = checks[f"cpu_factor_{kind}"]
        rows.append(
            (
                f"server CPU per refusal ({what}) ÷ bare app's per request",
                f"{check['value']:.2f} ({cpu[kind]['server_us_per_request']:.0f} vs {bare:.0f} µs)",
                check["target"],
                check["pass"],
                commit,
                load,
            )
        )
    for kind, what in (("over_limit", "an over-limit"), ("wrong_secret", "a wrong-secret")):
        check = checks[f"share_{kind}"]
        rows.append(
            (
                f"valid key's share under {what} flood (taskset)",
                f"{check['value']:.2f}",
                check["target"],
                check["pass"],
                commit,
                load,
            )
        )
    return rows


SEED_TARGET_S = 300.0


def _analytics_rows(analytics: dict) -> list[tuple[str, str, str, bool, str, str]]:
    """(figure, value, target, met, commit, load) from bench.analytics's report: the seed of
    the large site, the columnar copy's build, and every timed row of the large site that
    has a target (p50 / p99 in ms)."""
    from bench.analytics import BIG, FUNNEL_TARGETS_MS, TARGET_P50_MS, TARGET_P99_MS

    commit = analytics["commit"]
    before = analytics.get("load_before", analytics.get("load_before_timings", [0.0]))
    load = f"{before[0]:.2f} → {analytics['load_after'][0]:.2f}"
    rows = []
    scale = f"{analytics.get('big_events', 10_000_000) / 1e6:g}M"
    seeded = analytics.get("seeded")
    if isinstance(seeded, dict) and BIG in seeded:
        seconds = seeded[BIG]["seconds"]
        rows.append(
            (
                f"flask demo seed, {seeded[BIG]['events']:,} events (s)",
                f"{seconds:.0f}",
                f"≤ {SEED_TARGET_S:.0f}",
                seconds <= SEED_TARGET_S,
                commit,
                load,
            )
        )
    built = analytics.get("store_build")
    if built:
        rows.append(
            (
                "flask analytics store build --all (s)",
                f"{built['seconds']:.0f}",
                "—",
                True,
                commit,
                load,
            )
        )
    for row in analytics.get("timings", []):
        if row["site"] != BIG:
            continue
        if "target_p50_ms" in row:
            p50, p99 = row["target_p50_ms"], row["target_p99_ms"]
        elif row["what"] in FUNNEL_TARGETS_MS:
            p50, p99 = FUNNEL_TARGETS_MS[row["what"]], float("inf")
        else:
            p50, p99 = TARGET_P50_MS, TARGET_P99_MS
        target = f"{p50:,.0f} / {p99:,.0f}" if p99 != float("inf") else f"{p50:,.0f} / —"
        if row["p50_ms"] is None:
            failed = f"failed: {row['error'][:24]}"
            rows.append(
                (f"{row['what']}, {row['period']}, {scale}", failed, target, False, commit, load)
            )
            continue
        rows.append(
            (
                f"{row['what']}, {row['period']}, {scale} (p50 / p99 ms)",
                f"{row['p50_ms']:,.0f} / {row['p99_ms']:,.0f}",
                target,
                row["p50_ms"] <= p50 and row["p99_ms"] <= p99,
                commit,
                load,
            )
        )
    return rows


def main() -> int:
    """Print the table; 0 if every figure found meets its target."""
    run, flood = _load("latest.json"), _load("flood.json")
    analytics = _load("analytics.json")
    rows = (_run_rows(run) if run else []) + (_flood_rows(flood) if flood else [])
    rows += _analytics_rows(analytics) if analytics else []
    if not rows:
        print("no results yet: run `make bench BENCHES='run flood'` first", file=sys.stderr)
        return 2
    print("\nDataLook, every figure of `make bench` (load average: 1 min, before → after)")
    header = f"{'figure':<68} {'value':<34} {'target':<13} {'met':<4} {'commit':<14} load"
    print(header)
    print("-" * len(header))
    for figure, value, target, met, commit, load in rows:
        print(
            f"{figure:<68} {value:<34} {target:<13} {'yes' if met else 'NO':<4} "
            f"{commit or '?':<14} {load}"
        )
    results = (("bench.run", run), ("bench.flood", flood), ("bench.analytics", analytics))
    missing = [name for name, found in results if not found]
    if missing:
        print(f"(not run: {', '.join(missing)})")
        return 2
    return 0 if all(row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
