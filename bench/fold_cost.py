"""What the report fold costs ingestion: `python -m bench.fold_cost`. A benchmark, not a test.

The fold (`flask analytics fold`, started beside the server by scripts/serve.sh) reads new
events into the report summaries. Issue 13 asks that maintaining the summaries does not
slow ingestion. One server, started as `make run` starts it, takes scenario 2 of
`bench.run` (POST /event, one key, limit raised) in interleaved rounds:

- "fold on": the fold process runs as in production (every ANALYTICS_FOLD_INTERVAL_S);
- "fold off": the same process is paused (SIGSTOP, between two of its writes: pause) for
  the round.

Before every round the fold is let run until it has caught up, so each round starts with
no backlog; that catch-up happens between rounds and is not measured. So a "fold on"
round pays for folding its own events while they arrive, as a server in a steady state
does, and a "fold off" round pays for nothing. Same server, same database, same
connections: the pair's ratio isolates the fold. Also reports the fold process's CPU time
per folded event against the workers' per stored event.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.report import git_commit
from bench.scenarios import measured_run
from bench.servers import (
    ROOT,
    Server,
    children,
    cpu_seconds,
    flask_cli,
    free_port,
    raised_key,
    server_command,
    server_env,
)
from bench.wrk import INSTALL_WRK, example_event, warm_up

RESULTS = ROOT / "bench" / "results" / "fold_cost.json"
# "Within noise": the median pair keeps at least this share of requests/s, and its p99
# grows by at most this factor.
TARGET_RATIO = 0.95
TARGET_P99_FACTOR = 1.15
SITE = "fold.bench.example"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="pairs of rounds (5)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per round (20)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY")
    return parser.parse_args(argv)


def fold_process(master: int, timeout: float = 60.0) -> int:
    """The pid of the fold process (`flask analytics fold`) started beside the server's
    master: a child of its supervisor (`flask analytics supervise -- ... fold`), whose own
    command line names the fold too, so it is told apart by its subcommand. (Until this
    looked at the master's children only, it found the supervisor: the rounds "off" paused
    the supervisor, and the fold went on.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = children(master)
        while waiting:
            pid = waiting.pop()
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if _subcommand(command) == (b"analytics", b"fold"):
                return pid
            waiting.extend(children(pid))
        time.sleep(0.2)
    raise RuntimeError("no fold process found beside the server")


def pause(fold: int, database: Path) -> None:
    """SIGSTOP the fold between two of its writes: with the writers' lock held here (the
    fold writes only under it), so that no writer waits for a stopped process's lock."""
    from datalook.sql import filelock

    with filelock.for_database(str(database)).hold():
        os.kill(fold, signal.SIGSTOP)


def _subcommand(command: list[bytes]) -> tuple[bytes, ...]:
    """The flask subcommand of a command line (the group and command after `--app X`)."""
    for index, word in enumerate(command):
        if word == b"--app":
            return tuple(command[index + 2 : index + 4])
    return ()


def _read(database: Path, sql: str) -> int:
    """One integer read from the SQLite file (a WAL reader does not block the server)."""
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def top_id(database: Path) -> int:
    """The highest stored event id."""
    return _read(database, "SELECT coalesce(max(id), 0) FROM events")


def backlog(database: Path) -> int:
    """Stored events the fold has not read yet."""
    return _read(
        database,
        "SELECT coalesce(max(id), 0) - coalesce((SELECT last_event_id FROM analytics_cursor"
        " WHERE name = 'events'), 0) FROM events",
    )


def caught_up(database: Path, timeout: float = 120.0) -> float:
    """Wait until the fold has read every stored event; return the seconds waited."""
    started = time.monotonic()
    while backlog(database) > 0:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the fold did not catch up in {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the figures, write the JSON file; 0 if within the targets."""
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from datalook.config import gunicorn_settings

    env = server_env(options.workers)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="datalook-fold-cost-") as tmp:
        tmpdir = Path(tmp)
        instance = tmpdir / "instance"
        instance.mkdir()
        port = free_port()
        env.update(DATALOOK_INSTANCE_PATH=str(instance), PORT=str(port))
        body = tmpdir / "event.json"
        body.write_text(json.dumps(example_event()))
        server = Server(
            "datalook",
            server_command("wsgi:app", None),
            env,
            port,
            tmpdir / "server.log",
            ("GET", "/healthz", None),
        )
        database = instance / "datalook.db"
        pairs: list[dict] = []
        fold_cpu = off_cpu = 0.0
        folded = off_events = 0
        try:
            workers = gunicorn_settings(env)["workers"]
            server.start(workers + 1)  # the workers and the fold process
            fold = fold_process(server.process.pid)  # type: ignore[union-attr]
            flask_cli(env, "users", "create", "fold@example.com", "--password", "bench pw 1234")
            flask_cli(env, "sites", "create", SITE, "--owner", "fold@example.com")
            token = raised_key(env, SITE, "Fold")
            args = [str(body), token]
            warm_up(server.url + "/event", options, args)
            print(
                f"fold on / fold off: {options.rounds} pairs of {options.duration:g} s rounds "
                f"(wrk -t{options.threads} -c{options.connections}, {workers} workers) ..."
            )
            for number in range(options.rounds):
                order = ("on", "off") if number % 2 == 0 else ("off", "on")
                runs = {}
                for side in order:
                    caught_up(database)
                    if side == "off":
                        pause(fold, database)
                    first = top_id(database)
                    before = cpu_seconds([fold])[fold]
                    try:
                        runs[side] = measured_run(server, "/event", args, options, options.duration)
                    finally:
                        if side == "off":
                            os.kill(fold, signal.SIGCONT)
                    stored = top_id(database) - first
                    if side == "on":
                        caught_up(database)  # the fold's CPU for every event of the round
                        fold_cpu += cpu_seconds([fold])[fold] - before
                        folded += stored
                    else:
                        off_cpu += runs[side]["server_cpu_s"]
                        off_events += stored
                on, off = runs["on"], runs["off"]
                pair = {
                    "on_rps": on["requests_per_s"],
                    "off_rps": off["requests_per_s"],
                    "ratio": on["requests_per_s"] / off["requests_per_s"],
                    "on_p99_ms": on["p99_ms"],
                    "off_p99_ms": off["p99_ms"],
                    "p99_factor": on["p99_ms"] / off["p99_ms"],
                }
                pairs.append(pair)
                print(
                    f"  pair {number + 1}: on {pair['on_rps']:.0f} req/s p99 "
                    f"{pair['on_p99_ms']:.2f} ms, off {pair['off_rps']:.0f} req/s p99 "
                    f"{pair['off_p99_ms']:.2f} ms: ratio {pair['ratio']:.3f}, p99 factor "
                    f"{pair['p99_factor']:.2f}",
                    flush=True,
                )
        finally:
            server.stop()
    ratio = statistics.median(p["ratio"] for p in pairs)
    p99_factor = statistics.median(p["p99_factor"] for p in pairs)
    report = {
        "commit": git_commit(),
        "pairs": pairs,
        "median_ratio": ratio,
        "median_p99_factor": p99_factor,
        "fold_cpu_us_per_event": 1e6 * fold_cpu / folded if folded else None,
        # Fold paused: the master and its workers alone.
        "server_cpu_us_per_event_fold_off": 1e6 * off_cpu / off_events if off_events else None,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    met = ratio >= TARGET_RATIO and p99_factor <= TARGET_P99_FACTOR
    ranges = (
        f"pairs {min(p['ratio'] for p in pairs):.2f}–{max(p['ratio'] for p in pairs):.2f}, "
        f"p99 {min(p['p99_factor'] for p in pairs):.2f}–{max(p['p99_factor'] for p in pairs):.2f}"
    )
    print(
        f"fold on / fold off: median ratio {ratio:.3f} (target ≥ {TARGET_RATIO}), median p99 "
        f"factor {p99_factor:.2f} (target ≤ {TARGET_P99_FACTOR}); {ranges}: "
        f"{'met' if met else 'NOT met'}"
    )
    if folded:
        print(
            f"fold CPU {report['fold_cpu_us_per_event']:.1f} µs per event; the server's "
            f"without it {report['server_cpu_us_per_event_fold_off']:.0f} µs per event"
        )
    print(f"Written to {RESULTS.relative_to(ROOT)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
