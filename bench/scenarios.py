"""The measured scenarios: wrk runs against a server with its CPU time, memory and the
events it stored, merged into one scenario's figures; scenarios 1 and 2 in interleaved pairs."""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.servers import Server, cpu_seconds, peak_rss_kib
from bench.wrk import run_wrk

WARM_UP_SITE = "warm-up.bench.example"


def count_events(database: Path) -> int:
    """Stored events, read from the SQLite file (a WAL reader does not block the server)."""
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def settled_count(database: Path, timeout: float = 10.0) -> int:
    """The event count once requests still in flight at wrk's cut-off have been handled."""
    last = count_events(database)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = count_events(database)
        if now == last:
            return now
        last = now
    return last


def count_rows(database: Path) -> dict:
    """Stored events and the usage counters of the measured sites (the warm-up's left out),
    read straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        events = conn.execute(
            "SELECT count(*) FROM events WHERE site_id IS NOT "
            "(SELECT id FROM sites WHERE domain = ?)",
            (WARM_UP_SITE,),
        ).fetchone()[0]
        usage = conn.execute(
            "SELECT coalesce(sum(requests), 0) FROM key_usage WHERE api_key_id NOT IN "
            "(SELECT api_keys.id FROM api_keys JOIN sites ON sites.id = api_keys.site_id "
            "WHERE sites.domain = ?)",
            (WARM_UP_SITE,),
        ).fetchone()[0]
    finally:
        conn.close()
    return {"events": events, "usage_requests": usage}


def measured_run(
    server: Server, path: str, script_args: list[str], options: argparse.Namespace, seconds: float
) -> dict:
    """One wrk run against `server`, with the server's CPU time and peak memory."""
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    figures, raw = run_wrk(server.url + path, "post.lua", script_args, options, seconds)
    pids_after = server.pids()
    cpu_after = cpu_seconds(pids_after)
    figures["server_cpu_s"] = sum(
        cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0) for pid in cpu_after
    )
    figures["server_peak_rss_mib"] = peak_rss_kib(pids_after) / 1024
    figures["server_processes"] = len(pids_after)
    figures["wrk_output"] = raw
    return figures


def merged(
    name: str, path: str, runs: list[dict], events_per_request: int, stored: int | None
) -> dict:
    """One scenario's figures from its runs: totals summed, latency percentiles the median
    of the runs' (a single run: its own)."""
    counted: dict = {}
    for run in runs:
        for field_name, value in run["counted"].items():
            if isinstance(value, dict):
                bucket = counted.setdefault(field_name, {})
                for key, number in value.items():
                    bucket[key] = bucket.get(key, 0) + number
            else:
                counted[field_name] = counted.get(field_name, 0) + value
    duration_s = counted["duration_us"] / 1e6
    answered = max(counted["requests"], 1)
    server_cpu_s = sum(run["server_cpu_s"] for run in runs)
    figures = {
        "name": name,
        "url_path": path,
        "runs": len(runs),
        "counted": counted,
        "duration_s": duration_s,
        "events_per_request": events_per_request,
        "requests_per_s": counted["requests"] / duration_s,
        "ok_per_s": counted["ok"] / duration_s,
        "accepted_per_s": counted["accepted"] / duration_s,
        "server_cpu_s": server_cpu_s,
        "server_cpu_ms_per_request": server_cpu_s * 1000 / answered,
        "server_peak_rss_mib": max(run["server_peak_rss_mib"] for run in runs),
        "server_processes": runs[-1]["server_processes"],
        # Sent but not answered before wrk stopped: the server may still store these.
        "unanswered_requests": counted["sent"] - counted["requests"],
        "stored": stored,
        "wrk_output": [run["wrk_output"] for run in runs],
    }
    for pct in ("50", "75", "90", "99"):
        figures[f"p{pct}_ms"] = statistics.median(run[f"p{pct}_ms"] for run in runs)
    if stored is not None:
        low = counted["accepted"]
        high = low + figures["unanswered_requests"] * events_per_request
        figures["stored_check"] = {
            "accepted": low,
            "at_most": high,
            "stored": stored,
            "pass": low <= stored <= high,
        }
    return figures


def scenario(
    name: str,
    server: Server,
    path: str,
    script_args: list[str],
    options: argparse.Namespace,
    database: Path | None = None,
    events_per_request: int = 1,
) -> dict:
    """One measured wrk run with the server's CPU time, peak memory and stored events."""
    print(f"  {name} ({options.duration:g} s) ...", flush=True)
    stored_before = count_events(database) if database else 0
    run = measured_run(server, path, script_args, options, options.duration)
    stored = settled_count(database) - stored_before if database else None
    return merged(name, path, [run], events_per_request, stored)


@dataclass
class Side:
    """One side of the paired scenarios: its name, server and wrk arguments."""

    name: str
    server: Server
    script_args: list[str]


def paired_scenarios(
    sides: list[Side], options: argparse.Namespace, database: Path
) -> tuple[list[dict], list[dict]]:
    """The sides interleaved: `rounds` rounds of short runs, one of each side per round (the
    order turning round by round), each side getting `duration` seconds in all. The last
    side is DataLook's `POST /event`; the others are baselines.

    The machine is shared: its speed drifts over a run. Measured side by side, each round
    sees the same conditions, so the ratio of a round is meaningful even when the absolute
    figures move; the targets use the median of the rounds' ratios. Returns each side's
    merged figures, and per round each baseline's ratio and p99 factor (keyed by position).
    """
    seconds = options.duration / options.rounds
    names = ", ".join(side.name for side in sides)
    print(f"  {names}: {options.rounds} interleaved rounds of {seconds:g} s each ...", flush=True)
    runs: list[list[dict]] = [[] for _ in sides]
    stored_before = count_events(database)
    for number in range(options.rounds):
        shift = number % len(sides)
        order = list(range(len(sides)))[shift:] + list(range(len(sides)))[:shift]
        for index in order:
            side = sides[index]
            runs[index].append(
                measured_run(side.server, "/event", side.script_args, options, seconds)
            )
    stored = settled_count(database) - stored_before
    event_runs = runs[-1]
    pairs = []
    for number, one in enumerate(event_runs):
        pair = {"event_requests_per_s": one["requests_per_s"], "event_p99_ms": one["p99_ms"]}
        for index in range(len(sides) - 1):
            base = runs[index][number]
            pair[f"ratio_{index}"] = one["requests_per_s"] / base["requests_per_s"]
            pair[f"p99_factor_{index}"] = one["p99_ms"] / base["p99_ms"]
            pair[f"baseline_{index}_requests_per_s"] = base["requests_per_s"]
        pairs.append(pair)
    merged_sides = [
        merged(side.name, "/event", side_runs, 1, stored if index == len(sides) - 1 else None)
        for index, (side, side_runs) in enumerate(zip(sides, runs, strict=True))
    ]
    return merged_sides, pairs
