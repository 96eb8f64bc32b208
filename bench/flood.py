"""Flood benchmark: `python -m bench.flood` (part of `make bench`). A benchmark, not a test.

What a refused request costs the server, and what a flood of them leaves a valid key, in
one run, on DataLook started as `make run` starts it (scripts/serve.sh) beside the bare
Flask app on the same stack (server.py behind the same nginx front), both on a temporary
instance. With two or more CPUs the servers (and all they start) are pinned to the last
CPU and every wrk to the first (`taskset`), so that the load generator and the server do
not take each other's time; the other jobs of a shared machine still may (the load average
is printed).

1. Server CPU per request, from the server processes' own accounting (/proc/PID/stat:
   the master and its workers; the nginx front apart), in interleaved rounds of one wrk
   each (`-t1 -cN`): the bare app's 204; a key over its limit (its 429); a token whose key
   id is real and whose secret is wrong (401, and past the address's failed-attempt limit
   its 429). Each refusal's CPU per request over the bare app's: target ≤ 1.25.
2. The valid key's share under a flood: its requests/s while a flood of the same number of
   connections refuses (over-limit key; then wrong secret), over its requests/s alone, in
   interleaved rounds: target ≥ 0.75.

Writes bench/results/flood.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import git_commit
from bench.servers import (
    BENCH,
    ROOT,
    Server,
    cpu_seconds,
    flask_cli,
    free_port,
    raised_key,
    server_command,
    server_env,
)
from bench.wrk import INSTALL_WRK, example_event, parse_wrk, warm_up

RESULTS = BENCH / "results" / "flood.json"
TARGET_CPU_FACTOR = 1.25  # a refusal's server CPU at most this many times a bare request's
TARGET_SHARE = 0.75  # the valid key keeps at least this share of its throughput alone
OVER_LIMIT = "10 per 10 seconds"  # the flooding key's own limit: all but a few are 429
# The kinds of request part 1 times, each with what it is.
KINDS = {
    "bare": "bare Flask app, same stack (204)",
    "over_limit": "key over its limit (429)",
    "wrong_secret": "wrong secret (401, then the address's 429)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--duration", type=int, default=4, help="whole seconds per run (4)")
    parser.add_argument("--connections", type=int, default=4, help="per wrk (4)")
    parser.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument(
        "--stack",
        choices=("served", "gunicorn"),
        default="served",
        help="served: DataLook as make run serves it, the bare app on server.py (default); "
        "gunicorn: both on gunicorn's sync workers (gunicorn.conf.py) behind the front",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    return parser.parse_args(argv)


def cpu_split() -> tuple[str | None, str | None]:
    """(wrk's CPU, the servers' CPU) for taskset; (None, None) on one CPU."""
    count = os.cpu_count() or 1
    return ("0", str(count - 1)) if count >= 2 else (None, None)


def wrk(url: str, body: Path, token: str | None, seconds: int, options) -> dict:
    """One wrk run posting `body` (with `token`, if any); the parsed figures."""
    pinned = ["taskset", "-c", options.client_cpu] if options.client_cpu else []
    command = [
        *pinned,
        "wrk",
        "-t1",
        f"-c{options.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "post.lua"),
        url,
        "--",
        str(body),
        *([token] if token else []),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


@dataclass
class Target:
    """One kind of request: the server that answers it, and what wrk sends."""

    server: Server
    body: Path
    token: str | None


def cpu_per_request(target: Target, options) -> dict:
    """One wrk run of a kind: server and front CPU (µs) per answered request, the answers."""
    pids, front = target.server.pids(), target.server.front_pids()
    before, front_before = cpu_seconds(pids), cpu_seconds(front)
    figures = wrk(
        target.server.url + "/event", target.body, target.token, options.duration, options
    )
    after, front_after = cpu_seconds(pids), cpu_seconds(front)
    answered = max(figures["counted"]["requests"], 1)

    def spent(then: dict[int, float], now: dict[int, float]) -> float:
        return sum(now[pid] - then.get(pid, now[pid]) for pid in now)

    return {
        "requests": answered,
        "requests_per_s": figures["requests_per_s"],
        "answers": {k: figures["counted"][k] for k in ("ok", "limited", "other")},
        "server_us_per_request": spent(before, after) * 1e6 / answered,
        "front_us_per_request": spent(front_before, front_after) * 1e6 / answered,
    }


def valid_share(valid: Target, flood: Target | None, options) -> dict:
    """The valid key's run, with the flood's wrk (as many connections) beside it if given."""
    answers: dict = {}
    flooding = None
    if flood is not None:

        def run_flood() -> None:
            answers["flood"] = wrk(
                flood.server.url + "/event", flood.body, flood.token, options.duration + 1, options
            )

        flooding = threading.Thread(target=run_flood)
        flooding.start()
    answers["valid"] = wrk(
        valid.server.url + "/event", valid.body, valid.token, options.duration, options
    )
    if flooding is not None:
        flooding.join()
    return answers


def keys_for(env: dict[str, str]) -> dict[str, str]:
    """A user, a site, and the tokens: valid (limit raised), over its limit, wrong secret."""
    from datalook.keys import tokens

    flask_cli(env, "users", "create", "flood@example.com", "--password", "bench pw 1234")
    flask_cli(env, "sites", "create", "flood.bench.example", "--owner", "flood@example.com")
    valid = raised_key(env, "flood.bench.example", "Valid")
    over = flask_cli(env, "keys", "create", "--site", "flood.bench.example", "--name", "Flood")
    over = over.strip()
    flask_cli(env, "keys", "set-limit", tokens.parse(over).key_id, OVER_LIMIT)
    # The valid key's id with another secret: found, then refused.
    wrong = tokens.generate(tokens.parse(valid).key_id).token
    return {"valid": valid, "over_limit": over, "wrong_secret": wrong}


def measure(tmpdir: Path, options) -> dict:
    """Start both servers, run parts 1 and 2, stop them; the figures."""
    from datalook.config import gunicorn_settings

    env = server_env(options.workers)
    good = tmpdir / "event.json"
    good.write_text(json.dumps(example_event()))
    app_env = {**env, "DATALOOK_INSTANCE_PATH": str(tmpdir / "app"), "PORT": str(free_port())}
    bare_env = {**env, "DATALOOK_INSTANCE_PATH": str(tmpdir / "bare"), "PORT": str(free_port())}
    gunicorn = options.stack == "gunicorn"
    if gunicorn:  # serve.sh upgrades the database itself
        flask_cli(app_env, "db", "upgrade")
    app = Server(
        "datalook",
        server_command("wsgi:app", None, "gunicorn" if gunicorn else "served"),
        app_env,
        int(app_env["PORT"]),
        tmpdir / "datalook.log",
        ("GET", "/healthz", None),
        cpus=options.server_cpu,
    )
    bare = Server(
        "bare app, same stack",
        server_command("bench.bare_app:app", None, "gunicorn" if gunicorn else "granian"),
        bare_env,
        int(bare_env["PORT"]),
        tmpdir / "bare.log",
        ("POST", "/event", good.read_bytes()),
        cpus=options.server_cpu,
    )
    cpu_runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    share_runs: list[dict] = []
    try:
        workers = gunicorn_settings(env)["workers"]
        app.start(workers)
        bare.start(workers)
        tokens = keys_for(app_env)
        warm = argparse.Namespace(threads=1, connections=options.connections)
        warm_up(app.url + "/event", warm, [str(good), tokens["valid"]])
        warm_up(bare.url + "/event", warm, [str(good)])
        targets = {
            "bare": Target(bare, good, None),
            "over_limit": Target(app, good, tokens["over_limit"]),
            "wrong_secret": Target(app, good, tokens["wrong_secret"]),
        }
        valid = Target(app, good, tokens["valid"])
        for number in range(options.rounds):
            kinds = list(KINDS)[number % 3 :] + list(KINDS)[: number % 3]
            for kind in kinds:
                cpu_runs[kind].append(cpu_per_request(targets[kind], options))
            alone = valid_share(valid, None, options)["valid"]["requests_per_s"]
            share = {"alone_rps": alone}
            for kind in ("over_limit", "wrong_secret"):
                answers = valid_share(valid, targets[kind], options)
                share[f"{kind}_rps"] = answers["valid"]["requests_per_s"]
                share[f"{kind}_flood_rps"] = answers["flood"]["requests_per_s"]
                share[f"{kind}_share"] = share[f"{kind}_rps"] / alone
            share_runs.append(share)
            print(
                f"round {number + 1}: CPU per request (µs, server + front): "
                + ", ".join(
                    f"{kind} {cpu_runs[kind][-1]['server_us_per_request']:.0f} + "
                    f"{cpu_runs[kind][-1]['front_us_per_request']:.0f}"
                    for kind in KINDS
                )
                + f"; valid alone {alone:.0f} req/s, under the over-limit flood "
                f"{share['over_limit_rps']:.0f} ({share['over_limit_share']:.2f}), under the "
                f"wrong-secret flood {share['wrong_secret_rps']:.0f} "
                f"({share['wrong_secret_share']:.2f})",
                flush=True,
            )
    finally:
        app.stop()
        bare.stop()
    return {"cpu_runs": cpu_runs, "share_runs": share_runs, "workers": workers}


def summarise(measured: dict) -> dict:
    """Medians over the rounds, and the targets' checks."""
    cpu = {
        kind: {
            "server_us_per_request": statistics.median(
                run["server_us_per_request"] for run in runs
            ),
            "front_us_per_request": statistics.median(run["front_us_per_request"] for run in runs),
            "answers": {
                k: sum(run["answers"][k] for run in runs) for k in ("ok", "limited", "other")
            },
        }
        for kind, runs in measured["cpu_runs"].items()
    }
    bare = cpu["bare"]["server_us_per_request"]
    factors = {kind: cpu[kind]["server_us_per_request"] / bare for kind in KINDS if kind != "bare"}
    shares = {
        kind: statistics.median(run[f"{kind}_share"] for run in measured["share_runs"])
        for kind in ("over_limit", "wrong_secret")
    }
    return {
        "cpu": cpu,
        "cpu_factor": factors,
        "share": shares,
        "checks": {
            **{
                f"cpu_factor_{kind}": {
                    "value": value,
                    "target": f"<= {TARGET_CPU_FACTOR}",
                    "pass": value <= TARGET_CPU_FACTOR,
                }
                for kind, value in factors.items()
            },
            **{
                f"share_{kind}": {
                    "value": value,
                    "target": f">= {TARGET_SHARE}",
                    "pass": value >= TARGET_SHARE,
                }
                for kind, value in shares.items()
            },
        },
    }


def print_summary(report: dict) -> None:
    """The human-readable table."""
    print(
        f"\nFlood benchmark  {report['timestamp']}  commit {report['commit']}  "
        f"{report['workers']} workers ({report['stack']}); servers on CPU "
        f"{report['server_cpu']}, wrk on CPU {report['client_cpu']}\n"
        f"load average before {report['load_before']}, after {report['load_after']}\n"
    )
    print(f"{'request':<46} {'server µs/req':>13} {'front µs/req':>12} {'×bare':>6}  answers")
    for kind, what in KINDS.items():
        row = report["cpu"][kind]
        factor = report["cpu_factor"].get(kind, 1.0)
        print(
            f"{what:<46} {row['server_us_per_request']:>13.0f} "
            f"{row['front_us_per_request']:>12.0f} {factor:>6.2f}  {row['answers']}"
        )
    print("\nTargets")
    for name, check in report["checks"].items():
        mark = "PASS" if check["pass"] else "FAIL"
        print(f"  {name:<28} {check['value']:>6.2f}   target {check['target']:<7} {mark}")


def main(argv: list[str] | None = None) -> int:
    """Run both parts, print the table, write the JSON file; 0 if every target is met."""
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    options.client_cpu, options.server_cpu = (None, None) if options.no_pin else cpu_split()
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="datalook-flood-") as tmp:
        measured = measure(Path(tmp), options)
    report = {
        "timestamp": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "workers": measured["workers"],
        "stack": options.stack,
        "client_cpu": options.client_cpu,
        "server_cpu": options.server_cpu,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        **summarise(measured),
        "rounds": measured,
    }
    print_summary(report)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(check["pass"] for check in report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
