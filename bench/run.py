"""Ingestion benchmark: `python -m bench.run` (or `make bench`). A benchmark, not a test.

Starts the production server as `make run` does (scripts/serve.sh) on a temporary SQLite
database, and the bare-Flask baseline (bench/bare_app.py) twice, behind the same nginx front:
on gunicorn's sync workers (the conventional deployment) and on the stack that serves
DataLook (server.py); drives all three with wrk, one scenario after the other; then times
the show-once page and a rate-limit check in isolation. Prints a table and writes
bench/results/latest.json.

With --worker-class DataLook and the same-stack baseline are started as
`gunicorn -c gunicorn.conf.py -k CLASS` instead (after `flask db upgrade`), to compare
worker types; the default is exactly serve.sh.

This module is the run's order; servers.py starts and watches the servers, wrk.py drives
them, scenarios.py measures and merges the runs, report.py judges and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from bench.report import git_commit, print_table, stored_summary, target_checks
from bench.scenarios import WARM_UP_SITE, Side, count_rows, paired_scenarios, scenario
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
from bench.wrk import INSTALL_WRK, example_event, warm_up

RESULTS = BENCH / "results" / "latest.json"


# --- isolated timings -----------------------------------------------------------------------


def time_rate_limit_check(workdir: Path, n: int) -> dict:
    """measure_check_cost on a fresh embedded storage: the mapped file (the default)."""
    from bench.isolated import measure_check_cost
    from datalook.ratelimit.mapped import MappedWindowStorage
    from datalook.ratelimit.window import MMAP_SCHEME

    storages = {
        "mapped file (default)": MappedWindowStorage(
            f"{MMAP_SCHEME}:///{workdir / 'ratelimit-bench.window'}"
        ),
    }
    return {name: measure_check_cost(storage, n=n) for name, storage in storages.items()}


def time_show_once_page(workdir: Path, n: int) -> dict:
    """Render the real show-once page (12 highlighted snippets, fresh token) in a request."""
    os.environ["DATALOOK_INSTANCE_PATH"] = str(workdir)
    for name in ("DATABASE_URL", "RATELIMIT_STORAGE_URI", "PUBLIC_URL"):
        os.environ.pop(name, None)
    from datalook.app import create_app
    from datalook.extensions import db
    from datalook.keys import apikeys, tokens
    from datalook.models import Site, User
    from datalook.snippets import render as snippets
    from datalook.web import show_once

    app = create_app()
    samples = []
    with app.app_context():
        db.create_all()
        user = User(email="bench@example.com")
        user.set_password("bench password 1234")
        db.session.add(user)
        db.session.commit()
        site = Site(owner_id=user.id, domain="bench.example.com")
        db.session.add(site)
        db.session.commit()
        created = apikeys.create_key(site, "Bench", user)
        with app.test_request_context("/", method="POST", base_url="https://datalook.example"):
            show_once.render(site, created, "Your new API key")  # warm-up: templates, cache
            for _ in range(n):
                fresh = apikeys.CreatedKey(key=created.key, token=tokens.generate().token)
                start = time.perf_counter()
                response = show_once.render(site, fresh, "Your new API key")
                response.get_data()
                samples.append((time.perf_counter() - start) * 1e6)
        page_bytes = len(response.get_data())
        snippet_count = len(snippets.render("https://datalook.example/event", None))
        db.session.remove()
    samples.sort()
    return {
        "n": n,
        "snippets": snippet_count,
        "page_bytes": page_bytes,
        "mean_us": statistics.fmean(samples),
        "p50_us": samples[len(samples) // 2],
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


def isolated_timings(workdir: Path) -> dict:
    """The show-once page, the snippets and a rate-limit check, each timed in this process."""
    print("Timing the show-once page and a rate-limit check in isolation ...")
    show_once_page = time_show_once_page(workdir / "render", 200)
    from bench.isolated import measure_render_cost

    snippets_render = measure_render_cost(200)
    rate_limit_check = time_rate_limit_check(workdir, 2000)
    return {
        "show_once_page": show_once_page,
        "snippets_render": snippets_render,
        "rate_limit_check": rate_limit_check,
    }


# --- the servers and their data -------------------------------------------------------------


@dataclass
class Bench:
    """One run's two servers, the bodies wrk posts to them, and DataLook's database."""

    app: Server
    bare: Server  # bare Flask on gunicorn's sync workers: the conventional deployment
    bare_same: Server  # bare Flask on the stack that serves DataLook
    body_one: Path
    body_batch: Path
    database: Path


class Tokens(NamedTuple):
    """The keys the scenarios send: one raised, ten at the default limit, the warm-up's."""

    fast: str
    rotation: list[str]
    warm: str


def configured_workers(env: dict[str, str]) -> int | None:
    """The server workers the environment asks for (None, said why, if it is invalid)."""
    from datalook.config import ConfigError, gunicorn_settings

    try:
        return gunicorn_settings(env)["workers"]
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None


def server_mode(options: argparse.Namespace) -> tuple[str, str]:
    """The worker class, and how the servers are started."""
    if options.worker_class:
        return f"gunicorn {options.worker_class}", "gunicorn -k"
    return "granian (server.py)", "scripts/serve.sh (as make run)"


def write_bodies(tmpdir: Path, batch_size: int) -> tuple[Path, Path]:
    """The bodies of POST /event (the docs' example event) and POST /events."""
    body_one = tmpdir / "event.json"
    body_one.write_text(json.dumps(example_event()))
    body_batch = tmpdir / "events.json"
    body_batch.write_text(json.dumps({"events": [example_event()] * batch_size}))
    return body_one, body_batch


def prepare(tmpdir: Path, base_env: dict[str, str], options: argparse.Namespace) -> Bench:
    """The instance folder, the bodies, the database (with -k) and both servers, unstarted."""
    instance = tmpdir / "instance"
    instance.mkdir()
    app_port, bare_port, same_port = free_port(), free_port(), free_port()
    app_env = {
        **base_env,
        "DATALOOK_INSTANCE_PATH": str(instance),
        "PORT": str(app_port),
        "PUBLIC_URL": f"http://127.0.0.1:{app_port}",
    }
    # The baseline's own instance folder holds only its nginx front's files.
    bare_env = {
        **base_env,
        "PORT": str(bare_port),
        "DATALOOK_INSTANCE_PATH": str(tmpdir / "baseline-instance"),
    }
    same_env = {
        **base_env,
        "PORT": str(same_port),
        "DATALOOK_INSTANCE_PATH": str(tmpdir / "same-stack-instance"),
    }
    body_one, body_batch = write_bodies(tmpdir, options.batch_size)
    if options.worker_class:  # serve.sh upgrades the database itself
        flask_cli(app_env, "db", "upgrade")
    app = Server(
        "datalook",
        server_command("wsgi:app", options.worker_class),
        app_env,
        app_port,
        tmpdir / "datalook.log",
        ("GET", "/healthz", None),
    )
    bare = Server(
        "baseline",
        server_command("bench.bare_app:app", None, "gunicorn"),
        bare_env,
        bare_port,
        tmpdir / "baseline.log",
        ("POST", "/event", body_one.read_bytes()),
    )
    same_stack = "gunicorn" if options.worker_class else "granian"
    bare_same = Server(
        "baseline on the same stack",
        server_command("bench.bare_app:app", options.worker_class, same_stack),
        same_env,
        same_port,
        tmpdir / "baseline-same.log",
        ("POST", "/event", body_one.read_bytes()),
    )
    return Bench(app, bare, bare_same, body_one, body_batch, instance / "datalook.db")


def create_bench_data(env: dict[str, str]) -> Tokens:
    """A user, three sites and their keys, made through the CLI as an operator would."""
    print("Creating a user, three sites and keys through the CLI ...")
    flask_cli(env, "users", "create", "bench@example.com", "--password", "bench pw 1234")
    for domain in ("one.bench.example", "ten.bench.example", WARM_UP_SITE):
        flask_cli(env, "sites", "create", domain, "--owner", "bench@example.com")
    fast_token = raised_key(env, "one.bench.example", "Raised")
    rotation = [
        flask_cli(
            env, "keys", "create", "--site", "ten.bench.example", "--name", f"Key {i}"
        ).strip()
        for i in range(10)
    ]
    warm_token = raised_key(env, WARM_UP_SITE, "Warm-up")
    return Tokens(fast_token, rotation, warm_token)


def warm_up_servers(bench: Bench, options: argparse.Namespace, warm_token: str) -> None:
    """Every worker imports its app, opens its connections and compiles its statements.
    DataLook's warm-up events go to a site of their own, left out of the counts."""
    warm_up(bench.app.url + "/event", options, [str(bench.body_one), warm_token])
    warm_up(bench.bare.url + "/event", options, [str(bench.body_one)])
    warm_up(bench.bare_same.url + "/event", options, [str(bench.body_one)])


def run_scenarios(
    bench: Bench, options: argparse.Namespace, tokens: Tokens
) -> tuple[dict, list[dict]]:
    """Scenarios 1 to 4: their figures by name, and the interleaved rounds of 1 and 2."""
    print("Scenarios:")
    results: dict = {}
    sides, pairs = paired_scenarios(
        [
            Side("1 bare Flask, gunicorn sync", bench.bare, [str(bench.body_one)]),
            Side("1b bare Flask, the same stack", bench.bare_same, [str(bench.body_one)]),
            Side(
                "2 POST /event, one key (limit raised)",
                bench.app,
                [str(bench.body_one), tokens.fast],
            ),
        ],
        options,
        bench.database,
    )
    results["baseline"], results["baseline_same_stack"], results["event_one_key"] = sides
    # Position 0: the conventional deployment's bare app; 1: the bare app on DataLook's stack.
    for pair in pairs:
        pair["ratio"], pair["p99_factor"] = pair.pop("ratio_0"), pair.pop("p99_factor_0")
        pair["same_stack_ratio"] = pair.pop("ratio_1")
        pair["same_stack_p99_factor"] = pair.pop("p99_factor_1")
    results["event_ten_keys"] = scenario(
        "3 POST /event, 10 keys at the default limit",
        bench.app,
        "/event",
        [str(bench.body_one), *tokens.rotation],
        options,
        bench.database,
    )
    results["batch"] = scenario(
        f"4 POST /events, {options.batch_size} events per request",
        bench.app,
        "/events",
        [str(bench.body_batch), tokens.fast],
        options,
        bench.database,
        options.batch_size,
    )
    return results, pairs


def serve_and_measure(
    bench: Bench, workers: int, options: argparse.Namespace
) -> tuple[dict, list[dict], dict]:
    """Start both servers, give them data and warm them up, run the scenarios, stop them:
    the scenarios' figures, the pairs, and the servers' exit statuses."""
    worker_class, mode = server_mode(options)
    try:
        print(f"Starting servers ({workers} {worker_class} workers each, {mode}) ...")
        bench.app.start(workers)
        bench.bare.start(workers)
        bench.bare_same.start(workers)
        tokens = create_bench_data(bench.app.env)
        warm_up_servers(bench, options, tokens.warm)
        results, pairs = run_scenarios(bench, options, tokens)
    finally:
        bare_status = bench.bare.stop()
        same_status = bench.bare_same.stop()
        app_status = bench.app.stop()
    statuses = {"datalook": app_status, "baseline": bare_status, "baseline_same": same_status}
    return results, pairs, statuses


# --- the run --------------------------------------------------------------------------------


@dataclass
class Measured:
    """Everything one run measured, before it is judged against the targets."""

    results: dict
    pairs: list[dict]
    exit_status: dict
    errors_in_log: int
    stored_rows: dict
    isolated: dict


def measure(
    tmpdir: Path, base_env: dict[str, str], workers: int, options: argparse.Namespace
) -> Measured:
    """The servers' scenarios, what they stored and logged, then the isolated timings."""
    bench = prepare(tmpdir, base_env, options)
    results, pairs, exit_status = serve_and_measure(bench, workers, options)
    log_text = (tmpdir / "datalook.log").read_text(errors="replace")
    stored_rows = count_rows(bench.database)
    return Measured(
        results=results,
        pairs=pairs,
        exit_status=exit_status,
        errors_in_log=len(re.findall(r"Traceback|\[ERROR\]", log_text)),
        stored_rows=stored_rows,
        isolated=isolated_timings(tmpdir),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds of scenarios 1, 1b and 2 (each side still gets --duration)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (-c)")
    parser.add_argument("--batch-size", type=int, default=100, help="events per POST /events")
    parser.add_argument(
        "--workers", type=int, help="server workers (WEB_CONCURRENCY; default: environment)"
    )
    parser.add_argument(
        "--worker-class",
        help="gunicorn worker class (-k) for DataLook and the same-stack baseline, instead of "
        "serve.sh",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    options = parser.parse_args(argv)
    if options.rounds < 1 or options.duration < options.rounds:
        # wrk takes whole seconds: a shorter round would fail in the middle of the run.
        parser.error("--duration must be at least --rounds seconds (each round runs >= 1 s)")
    return options


def build_report(
    options: argparse.Namespace,
    argv: list[str] | None,
    workers: int,
    measured: Measured,
    started: datetime,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> dict:
    """The JSON report: the run, the machine, the servers, the figures and the checks."""
    worker_class, mode = server_mode(options)
    return {
        "timestamp": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "commit": git_commit(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load[0],
            "load_average_after": load[1],
        },
        "server": {
            "mode": mode,
            "workers": workers,
            "worker_class": worker_class,
            "exit_status": measured.exit_status,
            "errors_in_log": measured.errors_in_log,
        },
        "wrk": {
            "threads": options.threads,
            "connections": options.connections,
            "duration_s": options.duration,
        },
        "scenarios": measured.results,
        "stored": stored_summary(measured.results, measured.stored_rows),
        "pairs": measured.pairs,
        "checks": target_checks(measured.results, measured.pairs, measured.stored_rows),
        "isolated": measured.isolated,
    }


def write_report(report: dict, output: Path) -> None:
    """Write the JSON file and say where."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    print(f"\nWrote {shown}")


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, write the JSON file; 0 if all targets pass."""
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    base_env = server_env(options.workers)
    workers = configured_workers(base_env)
    if workers is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="datalook-bench-") as tmp:
        measured = measure(Path(tmp), base_env, workers, options)
    load = (load_before, os.getloadavg())
    report = build_report(options, argv, workers, measured, started, load)
    print_table(report)
    write_report(report, options.output)
    return 0 if all(check["pass"] for check in report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
