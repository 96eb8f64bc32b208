"""Browser-event benchmark: `python -m bench.collect`. A benchmark, not a test.

Starts the production server as `make run` does (scripts/serve.sh) on a temporary SQLite
database and drives POST /event (one key, limit raised) and POST /collect (one site key,
the per-address limit raised) with wrk on that one server, alternating rounds so that both
see the same machine. Prints a table and writes bench/results/collect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.scenarios import settled_count
from bench.servers import (
    BENCH,
    ROOT,
    Server,
    flask_cli,
    free_port,
    raised_key,
    server_command,
    server_env,
)
from bench.wrk import INSTALL_WRK, example_event, run_wrk

RESULTS = BENCH / "results" / "collect.json"
SITE = "collect.bench.example"
# One wrk client is one address: its per-address budget must not be what is measured.
RAISED_ADDRESS_LIMIT = "100000000 per minute"


def browser_event() -> dict:
    """What the script sends for a pageview (event_id left out: every request is new)."""
    return {"event_name": "pageview", "page_path": "/pricing"}


def collect_side(env: dict[str, str], domain: str, body_file: Path) -> tuple[str, list[str]]:
    """The /collect path (with the site's key) and collect.lua's arguments for a site made
    through the CLI; the server's env must raise COLLECT_ADDRESS_LIMIT (wrk is one address)."""
    snippet = flask_cli(env, "sites", "snippet", domain)
    site_key = snippet.split('data-site="', 1)[1].split('"', 1)[0]
    body_file.write_text(json.dumps(browser_event()))
    return f"/collect?site={site_key}", [str(body_file), f"https://{domain}"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.collect", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round and side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (-c)")
    parser.add_argument("--workers", type=int, help="server workers (default: environment)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    return parser.parse_args(argv)


def _median(runs: list[dict], name: str) -> float:
    """The median of one figure over the rounds."""
    return statistics.median(run[name] for run in runs)


def main(argv: list[str] | None = None) -> int:
    """Measure /event and /collect side by side; print the table, write the JSON file."""
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()
    env = server_env(options.workers)
    workers = int(env.get("WEB_CONCURRENCY", "2"))
    env["COLLECT_ADDRESS_LIMIT"] = RAISED_ADDRESS_LIMIT
    with tempfile.TemporaryDirectory(prefix="datalook-bench-collect-") as tmp:
        tmpdir = Path(tmp)
        instance = tmpdir / "instance"
        instance.mkdir()
        port = free_port()
        env.update(
            DATALOOK_INSTANCE_PATH=str(instance),
            PORT=str(port),
            PUBLIC_URL=f"http://127.0.0.1:{port}",
        )
        server_event = tmpdir / "event.json"
        server_event.write_text(json.dumps(example_event()))
        page_event = tmpdir / "pageview.json"
        server = Server(
            "datalook",
            server_command("wsgi:app", None),
            env,
            port,
            tmpdir / "datalook.log",
            ("GET", "/healthz", None),
        )
        database = instance / "datalook.db"
        runs: dict[str, list[dict]] = {"event": [], "collect": []}
        try:
            print(f"Starting the server ({workers} workers, scripts/serve.sh) ...")
            server.start(workers)
            flask_cli(env, "users", "create", "bench@example.com", "--password", "bench pw 1234")
            flask_cli(env, "sites", "create", SITE, "--owner", "bench@example.com")
            token = raised_key(env, SITE, "Raised")
            collect_path, collect_args = collect_side(env, SITE, page_event)
            sides = {
                "event": (f"{server.url}/event", "post.lua", [str(server_event), token]),
                "collect": (server.url + collect_path, "collect.lua", collect_args),
            }
            for url, script, args in sides.values():  # warm every worker up
                run_wrk(url, script, args, options, 2)
            for round_number in range(options.rounds):
                for name, (url, script, args) in sides.items():
                    before = settled_count(database)
                    figures, _ = run_wrk(url, script, args, options, options.duration)
                    figures["stored"] = settled_count(database) - before
                    runs[name].append(figures)
                    rate = figures["requests_per_s"]
                    print(
                        f"  round {round_number + 1} {name:8} {rate:9.0f} req/s"
                        f"  p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms"
                        f"  non-2xx {figures['non_2xx']}"
                    )
        finally:
            server.stop()
    report = {
        "started": datetime.now(UTC).isoformat(),
        "workers": workers,
        "wrk": {"threads": options.threads, "connections": options.connections},
        "duration_s": options.duration,
        "rounds": options.rounds,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "runs": runs,
        "median": {
            name: {
                figure: _median(side, figure)
                for figure in ("requests_per_s", "p50_ms", "p99_ms", "non_2xx")
            }
            for name, side in runs.items()
        },
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print("\nMedian of the rounds (one server, one wrk client):")
    print(f"  {'endpoint':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, figures in report["median"].items():
        print(
            f"  {name:10} {figures['requests_per_s']:9.0f} {figures['p50_ms']:8.2f}"
            f" {figures['p99_ms']:8.2f}"
        )
    print(f"Load average before {load_before[0]:.2f}, after {report['load_after'][0]:.2f}")
    print(f"Written to {options.output}")
    failed = any(
        run["non_2xx"] or run["counted"]["other"] for side in runs.values() for run in side
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
