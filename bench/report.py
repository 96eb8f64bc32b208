"""The ingestion benchmark's report: its targets, their checks, and the printed table."""

from __future__ import annotations

import statistics
import subprocess

from bench.servers import ROOT

# The targets, on a 2-core machine shared with wrk. POST /event (one key) as served, over a
# bare Flask app on nginx + gunicorn sync (the conventional deployment): requests/s and p99.
TARGET_RATIO = 1.0
TARGET_P99_FACTOR = 1.5
# POST /event over the bare app on the stack that serves DataLook: the app's own cost.
TARGET_SAME_STACK_RATIO = 0.8
TARGET_BATCH_EVENTS_PER_S = 100_000


def git_commit() -> str | None:
    """The commit measured (with '-dirty' when the tree has changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def _mark(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def print_table(report: dict) -> None:
    """The human-readable summary."""
    machine, server, wrk = report["machine"], report["server"], report["wrk"]
    pairs = report["pairs"]
    ratios = [pair["ratio"] for pair in pairs]
    factors = [pair["p99_factor"] for pair in pairs]
    same = [pair["same_stack_ratio"] for pair in pairs]
    print(
        f"\nDataLook ingestion benchmark  {report['timestamp']}  commit {report['commit']}\n"
        f"{machine['cpu_count']} CPUs, Python {machine['python']}; {server['workers']} "
        f"{server['worker_class']} workers via {server['mode']}; wrk -t{wrk['threads']} "
        f"-c{wrk['connections']} -d{wrk['duration_s']:g}s\n"
        "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}\n".format(
            *machine["load_average_before"], *machine["load_average_after"]
        )
    )
    header = (
        f"{'scenario':<46} {'req/s':>9} {'2xx/s':>9} {'events/s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'2xx':>8} {'429':>7} {'other':>6} {'sock err':>8} "
        f"{'CPU s':>6} {'ms/req':>6} {'peak MiB':>8} {'stored':>8}"
    )
    print(header)
    print("-" * len(header))
    for run in report["scenarios"].values():
        counted = run["counted"]
        errors = sum(counted["errors"][k] for k in ("connect", "read", "write", "timeout"))
        stored_rows = "" if run["stored"] is None else run["stored"]
        print(
            f"{run['name']:<46} {run['requests_per_s']:>9.0f} {run['ok_per_s']:>9.0f} "
            f"{run['accepted_per_s']:>9.0f} {run['p50_ms']:>7.2f} {run['p99_ms']:>7.2f} "
            f"{counted['ok']:>8} {counted['limited']:>7} {counted['other']:>6} {errors:>8} "
            f"{run['server_cpu_s']:>6.1f} {run['server_cpu_ms_per_request']:>6.2f} "
            f"{run['server_peak_rss_mib']:>8.0f} {stored_rows:>8}"
        )
    print(
        "events/s: accepted events per second (a 204 is one event); CPU s, ms/req: server\n"
        "CPU time (master + workers) in the run and per answered request; peak: sum of VmHWM;\n"
        "stored: new rows in events during the run, in-flight requests at the cut-off included;\n"
        "1, 1b and 2 ran as interleaved rounds: totals over the rounds, p50/p99 their medians"
    )
    checks = report["checks"]
    stored = report["stored"]
    print("\nTargets")
    print(
        f"  (2)/(1) requests/s      {checks['ratio']['value']:>8.2f}   target >= "
        f"{TARGET_RATIO}   {_mark(checks['ratio']['pass'])}   median of {len(pairs)} pairs "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )
    print(
        f"  p99(2)/p99(1)           {checks['p99_factor']['value']:>8.2f}   target <= "
        f"{TARGET_P99_FACTOR:g}   {_mark(checks['p99_factor']['pass'])}   median of "
        f"{len(pairs)} pairs ({min(factors):.2f}-{max(factors):.2f})"
    )
    print(
        f"  (2)/(1b) requests/s     {checks['same_stack_ratio']['value']:>8.2f}   target >= "
        f"{TARGET_SAME_STACK_RATIO}   {_mark(checks['same_stack_ratio']['pass'])}   median of "
        f"{len(pairs)} rounds ({min(same):.2f}-{max(same):.2f})"
    )
    print(
        f"  batch events/s          {checks['batch_events_per_s']['value']:>8.0f}   target >= "
        f"{TARGET_BATCH_EVENTS_PER_S}  {_mark(checks['batch_events_per_s']['pass'])}"
    )
    print(
        f"  stored vs accepted      {stored['events']} stored after shutdown, "
        f"{stored['accepted']} accepted + at most "
        f"{checks['stored_vs_accepted']['value']['at_most'] - stored['accepted']} in flight at "
        f"wrk's cut-off ({stored['unanswered_requests']} requests)   "
        f"{_mark(checks['stored_vs_accepted']['pass'])}"
    )
    print(
        f"  usage counters          {stored['usage_requests']} requests counted; "
        f"{stored['authenticated_requests']} answered 2xx/429 + "
        f"{stored['unanswered_requests']} in flight"
    )
    print(
        f"  server exit status      datalook {server['exit_status']['datalook']}, "
        f"baseline {server['exit_status']['baseline']}; "
        f"{server['errors_in_log']} errors in the server log"
    )
    iso = report["isolated"]
    page, render, checks = iso["show_once_page"], iso["snippets_render"], iso["rate_limit_check"]
    print("\nIn isolation (one process)")
    print(
        f"  show-once page, {page['snippets']} snippets ({page['page_bytes'] // 1024} KiB)  "
        f"p50 {page['p50_us'] / 1000:.2f} ms  p99 {page['p99_us'] / 1000:.2f} ms"
    )
    print(
        f"  snippets.render (12, fresh token)   p50 {render['p50_us'] / 1000:.2f} ms  "
        f"p99 {render['p99_us'] / 1000:.2f} ms"
    )
    for name, check in checks.items():
        print(
            f"  rate-limit check, {name:21s} p50 {check['p50_us']:.0f} us  "
            f"p99 {check['p99_us']:.0f} us  mean {check['mean_us']:.0f} us"
        )


# The scenarios of the DataLook server (the baseline stores nothing).
DATALOOK_SCENARIOS = ("event_one_key", "event_ten_keys", "batch")


def stored_summary(results: dict, stored_rows: dict) -> dict:
    """The rows found after shutdown beside what the scenarios were answered."""
    runs = [results[name] for name in DATALOOK_SCENARIOS]
    return {
        **stored_rows,
        "accepted": sum(r["counted"]["accepted"] for r in runs),
        "authenticated_requests": sum(r["counted"]["ok"] + r["counted"]["limited"] for r in runs),
        "unanswered_requests": sum(r["unanswered_requests"] for r in runs),
    }


def target_checks(results: dict, pairs: list[dict], stored_rows: dict) -> dict:
    """Each target with its value and whether it passed."""
    runs = [results[name] for name in DATALOOK_SCENARIOS]
    accepted = sum(r["counted"]["accepted"] for r in runs)
    batch = results["batch"]
    # Medians over the interleaved pairs (see scenarios.paired_scenarios).
    ratio = statistics.median(pair["ratio"] for pair in pairs)
    p99_factor = statistics.median(pair["p99_factor"] for pair in pairs)
    same_stack = statistics.median(pair["same_stack_ratio"] for pair in pairs)
    stored_during = sum(r["stored"] for r in runs)
    return {
        "ratio": {
            "value": ratio,
            "target": f">= {TARGET_RATIO}",
            "pass": ratio >= TARGET_RATIO,
        },
        "p99_factor": {
            "value": p99_factor,
            "target": f"<= {TARGET_P99_FACTOR}",
            "pass": p99_factor <= TARGET_P99_FACTOR,
        },
        "same_stack_ratio": {
            "value": same_stack,
            "target": f">= {TARGET_SAME_STACK_RATIO}",
            "pass": same_stack >= TARGET_SAME_STACK_RATIO,
        },
        "batch_events_per_s": {
            "value": batch["accepted_per_s"],
            "target": f">= {TARGET_BATCH_EVENTS_PER_S}",
            "pass": batch["accepted_per_s"] >= TARGET_BATCH_EVENTS_PER_S,
        },
        # Every acknowledged event is stored; beyond those, at most the events of requests
        # still in flight when wrk stopped (stored, but their answer never read); and nothing
        # appears or disappears between the end of the runs and the server's shutdown.
        "stored_vs_accepted": {
            "value": {
                "stored": stored_rows["events"],
                "accepted": accepted,
                "at_most": sum(r["stored_check"]["at_most"] for r in runs),
                "stored_before_shutdown": stored_during,
            },
            "target": "accepted <= stored <= accepted + in-flight events, per scenario",
            "pass": all(r["stored_check"]["pass"] for r in runs)
            and stored_rows["events"] == stored_during,
        },
    }
