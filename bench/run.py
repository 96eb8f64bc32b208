"""Ingestion benchmark: `python -m bench.run` (or `make bench`). A benchmark, not a test.

Starts the production server as `make run` does (scripts/serve.sh) on a temporary SQLite
database, and the bare-Flask baseline (bench/bare_app.py) under the same gunicorn
configuration; drives both with wrk, one scenario after the other; then times the show-once
page and a rate-limit check in isolation. Prints a table and writes bench/results/latest.json.

With --worker-class the servers are started as `gunicorn -c gunicorn.conf.py -k CLASS`
instead (after `flask db upgrade`), to compare worker types; the default is exactly serve.sh.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
RESULTS = BENCH / "results" / "latest.json"
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The targets of issue 7, on a 2-core machine shared with wrk.
TARGET_RATIO = 0.6  # requests/s of POST /event (one key) over the bare-Flask baseline
TARGET_P99_FACTOR = 2.0  # p99 of POST /event at most this many times the baseline's
TARGET_BATCH_EVENTS_PER_S = 50_000

WARM_UP_SITE = "warm-up.bench.example"

INSTALL_WRK = """wrk is not installed; the benchmark drives the server with it.
Install it with:  sudo apt-get install wrk   (Debian/Ubuntu; macOS: brew install wrk)"""


# --- the docs' example event ----------------------------------------------------------------


def example_event() -> dict:
    """The example event of the docs page (the same object the snippets send)."""
    from datalook.snippets.render import EXAMPLE_EVENT

    return dict(EXAMPLE_EVENT)


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """Ask the kernel for a free TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (index 0 is the state)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (gunicorn's workers; not the nginx front beside them)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat_fields(int(entry))
                if int(fields[1]) == pid and not _is_front(int(entry)):
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return found


def _is_front(pid: int) -> bool:
    """Whether a process is the nginx front that scripts/front.sh starts."""
    with open(f"/proc/{pid}/comm") as comm:
        return comm.read().strip() == "nginx"


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each live process, in seconds."""
    times = {}
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def peak_rss_kib(pids: list[int]) -> int:
    """Sum of VmHWM (peak resident set) over the processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


@dataclass
class Server:
    """A gunicorn master (plus workers) started for the benchmark."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    ready_check: tuple[str, str, bytes | None]  # method, path, body
    process: subprocess.Popen | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, workers: int, timeout: float = 60.0) -> None:
        """Start the server; return when it answers and all its workers are up."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} server exited during start-up:\n{tail}")
            if self._answers() and len(children(self.process.pid)) >= workers:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} server did not become ready in {timeout:.0f} s")

    def _answers(self) -> bool:
        """Whether the ready check request gets a 2xx answer."""
        method, path, body = self.ready_check
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            return 200 <= conn.getresponse().status < 300
        except OSError:
            return False
        finally:
            conn.close()

    def pids(self) -> list[int]:
        """The master and its workers."""
        assert self.process is not None
        return [self.process.pid, *children(self.process.pid)]

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM the master (workers finish and flush), wait; return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log is not None:
            self._log.close()
        return self.process.returncode


def server_env(workers: int | None) -> dict[str, str]:
    """The environment a benchmark's server starts with: this one, minus the settings that
    would point it at an operator's database or rate-limit storage, on 127.0.0.1."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "RATELIMIT_STORAGE_URI", "DATALOOK_ACCESS_LOG")
    }
    env["HOST"] = "127.0.0.1"
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    return env


def server_command(app: str, worker_class: str | None) -> list[str]:
    """How to start gunicorn: serve.sh as `make run` does, or gunicorn with `-k`."""
    if app == "wsgi:app" and worker_class is None:
        return [str(ROOT / "scripts" / "serve.sh")]
    # Behind the same nginx front as serve.sh, so that both sides of the ratio pay for it.
    command = [str(ROOT / "scripts" / "front.sh"), str(VENV_BIN / "gunicorn")]
    command += ["-c", "gunicorn.conf.py"]
    if worker_class:
        command += ["-k", worker_class]
    return [*command, app]


def flask_cli(env: dict[str, str], *args: str) -> str:
    """Run `python -m flask --app wsgi ARGS` against the benchmark database; return stdout."""
    result = subprocess.run(
        [*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


# --- wrk ------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    """'1.23ms' / '850.00us' / '1.02s' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """Requests/s, latency percentiles and non-2xx count from wrk --latency output."""
    figures: dict = {}
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    figures["requests_per_s"] = float(match.group(1)) if match else 0.0
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE)
        figures[f"p{pct}_ms"] = _ms(match.group(1)) if match else None
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    figures["non_2xx"] = int(match.group(1)) if match else 0
    match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no BENCH_JSON summary:\n{output[-2000:]}")
    figures["counted"] = json.loads(match.group(1))
    return figures


def run_wrk(
    url: str, script: str, script_args: list[str], options: argparse.Namespace, seconds: float
) -> tuple[dict, str]:
    """Run wrk once; return the parsed figures and its raw output."""
    command = [
        "wrk",
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / script),
        url,
        "--",
        *script_args,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    figures = parse_wrk(result.stdout)
    figures["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return figures, result.stdout


def raised_key(env: dict[str, str], domain: str, name: str) -> str:
    """Create a key through the CLI with its limit raised so far that 429 never interferes;
    return its token."""
    from datalook.keys import tokens

    token = flask_cli(env, "keys", "create", "--site", domain, "--name", name).strip()
    flask_cli(env, "keys", "set-limit", tokens.parse(token).key_id, "100000000 per 10 seconds")
    return token


def warm_up(url: str, options: argparse.Namespace, script_args: list[str]) -> None:
    """Two seconds of the measured POSTs, so that every worker has booted and has served
    them (connections opened, statements compiled) before anything is measured."""
    subprocess.run(
        [
            "wrk",
            f"-t{options.threads}",
            f"-c{options.connections}",
            "-d2s",
            "-s",
            str(BENCH / "post.lua"),
            url,
            "--",
            *script_args,
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )


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
    baseline: Side, event: Side, options: argparse.Namespace, database: Path
) -> tuple[dict, dict, list[dict]]:
    """Scenarios 1 and 2 interleaved: `rounds` pairs of short runs, alternating which goes
    first, each side getting `duration` seconds in all.

    The machine is shared: its speed drifts over a run. Measured side by side, each pair
    sees the same conditions, so the ratio of a pair is meaningful even when the absolute
    figures move; the target uses the median of the pairs' ratios.
    """
    seconds = options.duration / options.rounds
    print(
        f"  1 {baseline.name} and 2 {event.name}: {options.rounds} interleaved rounds of "
        f"{seconds:g} s each ...",
        flush=True,
    )
    runs: dict[str, list[dict]] = {"baseline": [], "event": []}
    stored_before = count_events(database)
    for number in range(options.rounds):
        order = ("baseline", "event") if number % 2 == 0 else ("event", "baseline")
        for which in order:
            side = baseline if which == "baseline" else event
            runs[which].append(
                measured_run(side.server, "/event", side.script_args, options, seconds)
            )
    stored = settled_count(database) - stored_before
    pairs = [
        {
            "ratio": one["requests_per_s"] / base["requests_per_s"],
            "p99_factor": one["p99_ms"] / base["p99_ms"],
            "baseline_requests_per_s": base["requests_per_s"],
            "event_requests_per_s": one["requests_per_s"],
        }
        for base, one in zip(runs["baseline"], runs["event"], strict=True)
    ]
    return (
        merged(f"1 {baseline.name}", "/event", runs["baseline"], 1, None),
        merged(f"2 {event.name}", "/event", runs["event"], 1, stored),
        pairs,
    )


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


# --- the run --------------------------------------------------------------------------------


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds of scenarios 1 and 2 (each side still gets --duration)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (-c)")
    parser.add_argument("--batch-size", type=int, default=100, help="events per POST /events")
    parser.add_argument(
        "--workers", type=int, help="gunicorn workers (WEB_CONCURRENCY; default: environment)"
    )
    parser.add_argument(
        "--worker-class",
        help="gunicorn worker class (-k); starts gunicorn directly instead of serve.sh",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, write the JSON file; 0 if all targets pass."""
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from datalook.config import ConfigError, gunicorn_settings

    load_before = os.getloadavg()
    started = datetime.now(UTC)
    base_env = server_env(options.workers)
    try:
        workers = gunicorn_settings(base_env)["workers"]
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    worker_class = options.worker_class or "sync"
    mode = "gunicorn -k" if options.worker_class else "scripts/serve.sh (as make run)"

    with tempfile.TemporaryDirectory(prefix="datalook-bench-") as tmp:
        tmpdir = Path(tmp)
        instance = tmpdir / "instance"
        instance.mkdir()
        app_port, bare_port = free_port(), free_port()
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
        body_one = tmpdir / "event.json"
        body_one.write_text(json.dumps(example_event()))
        body_batch = tmpdir / "events.json"
        body_batch.write_text(json.dumps({"events": [example_event()] * options.batch_size}))

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
            server_command("bench.bare_app:app", options.worker_class),
            bare_env,
            bare_port,
            tmpdir / "baseline.log",
            ("POST", "/event", body_one.read_bytes()),
        )
        database = instance / "datalook.db"
        results: dict = {}
        try:
            print(f"Starting servers ({workers} {worker_class} workers each, {mode}) ...")
            app.start(workers)
            bare.start(workers)
            print("Creating a user, three sites and keys through the CLI ...")
            flask_cli(
                app_env, "users", "create", "bench@example.com", "--password", "bench pw 1234"
            )
            for domain in ("one.bench.example", "ten.bench.example", WARM_UP_SITE):
                flask_cli(app_env, "sites", "create", domain, "--owner", "bench@example.com")
            fast_token = raised_key(app_env, "one.bench.example", "Raised")
            rotation = [
                flask_cli(
                    app_env, "keys", "create", "--site", "ten.bench.example", "--name", f"Key {i}"
                ).strip()
                for i in range(10)
            ]
            warm_token = raised_key(app_env, WARM_UP_SITE, "Warm-up")
            # Warm-up: every worker imports its app, opens its connections and compiles its
            # statements. Its events go to a site of its own, left out of the counts.
            warm_up(app.url + "/event", options, [str(body_one), warm_token])
            warm_up(bare.url + "/event", options, [str(body_one)])

            print("Scenarios:")
            results["baseline"], results["event_one_key"], pairs = paired_scenarios(
                Side("baseline: bare Flask", bare, [str(body_one)]),
                Side("POST /event, one key (limit raised)", app, [str(body_one), fast_token]),
                options,
                database,
            )
            results["event_ten_keys"] = scenario(
                "3 POST /event, 10 keys at the default limit",
                app,
                "/event",
                [str(body_one), *rotation],
                options,
                database,
            )
            results["batch"] = scenario(
                f"4 POST /events, {options.batch_size} events per request",
                app,
                "/events",
                [str(body_batch), fast_token],
                options,
                database,
                options.batch_size,
            )
        finally:
            bare_status = bare.stop()
            app_status = app.stop()
        log_text = (tmpdir / "datalook.log").read_text(errors="replace")
        stored = count_rows(database)
        print("Timing the show-once page and a rate-limit check in isolation ...")
        show_once_page = time_show_once_page(tmpdir / "render", 200)
        from bench.isolated import measure_render_cost

        snippets_render = measure_render_cost(200)
        rate_limit_check = time_rate_limit_check(tmpdir, 2000)

    load_after = os.getloadavg()
    datalook_runs = [results[k] for k in ("event_one_key", "event_ten_keys", "batch")]
    accepted = sum(r["counted"]["accepted"] for r in datalook_runs)
    at_most = sum(r["stored_check"]["at_most"] for r in datalook_runs)
    stored_during = sum(r["stored"] for r in datalook_runs)
    authenticated = sum(r["counted"]["ok"] + r["counted"]["limited"] for r in datalook_runs)
    unanswered = sum(r["unanswered_requests"] for r in datalook_runs)
    batch = results["batch"]
    # Medians over the interleaved pairs (see paired_scenarios).
    ratio = statistics.median(pair["ratio"] for pair in pairs)
    p99_factor = statistics.median(pair["p99_factor"] for pair in pairs)
    checks = {
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
                "stored": stored["events"],
                "accepted": accepted,
                "at_most": at_most,
                "stored_before_shutdown": stored_during,
            },
            "target": "accepted <= stored <= accepted + in-flight events, per scenario",
            "pass": all(r["stored_check"]["pass"] for r in datalook_runs)
            and stored["events"] == stored_during,
        },
    }
    report = {
        "timestamp": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "commit": git_commit(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "server": {
            "mode": mode,
            "workers": workers,
            "worker_class": worker_class,
            "exit_status": {"datalook": app_status, "baseline": bare_status},
            "errors_in_log": len(re.findall(r"Traceback|\[ERROR\]", log_text)),
        },
        "wrk": {
            "threads": options.threads,
            "connections": options.connections,
            "duration_s": options.duration,
        },
        "scenarios": results,
        "stored": {
            **stored,
            "accepted": accepted,
            "authenticated_requests": authenticated,
            "unanswered_requests": unanswered,
        },
        "pairs": pairs,
        "checks": checks,
        "isolated": {
            "show_once_page": show_once_page,
            "snippets_render": snippets_render,
            "rate_limit_check": rate_limit_check,
        },
    }
    print_table(report)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = (
        options.output.relative_to(ROOT) if options.output.is_relative_to(ROOT) else options.output
    )
    print(f"\nWrote {shown}")
    return 0 if all(check["pass"] for check in checks.values()) else 1


def _mark(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def print_table(report: dict) -> None:
    """The human-readable summary."""
    machine, server, wrk = report["machine"], report["server"], report["wrk"]
    pairs = report["pairs"]
    ratios = [pair["ratio"] for pair in pairs]
    factors = [pair["p99_factor"] for pair in pairs]
    print(
        f"\nDataLook ingestion benchmark  {report['timestamp']}  commit {report['commit']}\n"
        f"{machine['cpu_count']} CPUs, Python {machine['python']}; gunicorn {server['workers']} "
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
        "1 and 2 ran as interleaved rounds: totals over the rounds, p50/p99 their medians"
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
        f"{TARGET_P99_FACTOR:g}     {_mark(checks['p99_factor']['pass'])}   median of "
        f"{len(pairs)} pairs ({min(factors):.2f}-{max(factors):.2f})"
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


if __name__ == "__main__":
    sys.exit(main())
