"""Flood benchmark: `python -m bench.flood`. A benchmark, not a test.

One key floods the server with malformed bodies (every one refused, and offered to the
refused-request log) while another key sends valid events. The valid key's throughput is
compared with the same run without the flood, in interleaved rounds (alone, flooded, ...),
so that both sides of each pair meet the same machine conditions. A second server, the
same but started with REFUSAL_LOG_PER_SECOND=0, takes the same flood in each round: the
ratio of the two flooded runs is what the refused-request log itself costs the valid key.
Also reports how many refused requests the log kept (it must stay bounded).

Two floors take the same flood in each round too (bench/floor.py), while the valid key
keeps sending to DataLook: nginx alone answering 429 on a port of its own (refusing costs
nothing past nginx), and a WSGI app that answers 429 unread, served exactly as DataLook is
(nginx front, gunicorn sync workers). Their ratios are the best that refusing could reach
on this machine: with no app work at all, or with no work past the server's own.

The server is started as `make run` starts it (scripts/serve.sh), on a temporary SQLite
database. The flood key keeps the default limit (500 per 10 s), as a misbehaving client
would: past it, the flood is answered 429. `--flood-limit` raises it so that every flooded
request is a 400 with its body read and validated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.floor import NginxFloor
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
from bench.wrk import INSTALL_WRK, example_event, parse_wrk, warm_up

TARGET_SLOWDOWN = 0.10  # the valid key keeps at least 90% of its throughput under the flood
# The floors (bench/floor.py), by the name their figures carry.
FLOORS = {
    "stack": "a WSGI app answering 429 unread (same nginx front, same gunicorn)",
    "nginx": "nginx alone answering 429",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs (default 3)")
    parser.add_argument("--duration", type=int, default=4, help="whole seconds per run")
    parser.add_argument("--connections", type=int, default=4, help="per wrk (default 4)")
    parser.add_argument("--flood-limit", default=None, help='e.g. "100000000 per 10 seconds"')
    parser.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY")
    return parser.parse_args(argv)


def wrk(url: str, body: Path, token: str, seconds: int, connections: int) -> dict:
    """One wrk run posting `body` with `token`; the parsed figures."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "post.lua"),
        url,
        "--",
        str(body),
        token,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


def one_round(
    url: str, valid: tuple[Path, str], flood: tuple[str, Path, str] | None, options
) -> dict:
    """The valid key's run, with the flood (its own URL, body, token) beside it when given."""
    answers: dict = {}
    flooding = None
    if flood is not None:

        def run_flood() -> None:
            answers["flood"] = wrk(*flood, options.duration + 1, options.connections)

        flooding = threading.Thread(target=run_flood)
        flooding.start()
    answers["valid"] = wrk(url, *valid, options.duration, options.connections)
    if flooding is not None:
        flooding.join()
    return answers


def keys_for(env: dict[str, str], options: argparse.Namespace) -> tuple[str, str]:
    """A user, a site, the valid key (limit raised) and the flood key on one server."""
    flask_cli(env, "users", "create", "flood@example.com", "--password", "bench pw 1234")
    flask_cli(env, "sites", "create", "flood.bench.example", "--owner", "flood@example.com")
    valid_token = raised_key(env, "flood.bench.example", "Valid")
    flood_token = flask_cli(
        env, "keys", "create", "--site", "flood.bench.example", "--name", "Flood"
    ).strip()
    if options.flood_limit:
        from datalook.keys import tokens

        key_id = tokens.parse(flood_token).key_id
        flask_cli(env, "keys", "set-limit", key_id, options.flood_limit)
    return valid_token, flood_token


def refused_rows(database: Path) -> int:
    """Rows in the refused-request log (a WAL reader does not block the server)."""
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM refused_requests").fetchone()[0]
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the figures; 0 if the valid key kept 90% of its throughput."""
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        print(INSTALL_WRK, file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from datalook.config import gunicorn_settings

    env = server_env(options.workers)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="datalook-flood-") as tmp:
        tmpdir = Path(tmp)
        instance = tmpdir / "instance"
        instance.mkdir()
        port = free_port()
        env.update(DATALOOK_INSTANCE_PATH=str(instance), PORT=str(port))
        good = tmpdir / "event.json"
        good.write_text(json.dumps(example_event()))
        bad = tmpdir / "bad.json"
        bad.write_text(json.dumps({**example_event(), "success_value": "9.99", "email": "a@b.c"}))
        quiet_instance = tmpdir / "quiet"
        quiet_instance.mkdir()
        quiet_port = free_port()
        quiet_env = {
            **env,
            "DATALOOK_INSTANCE_PATH": str(quiet_instance),
            "PORT": str(quiet_port),
            "REFUSAL_LOG_PER_SECOND": "0",
        }
        server = Server(
            "datalook",
            server_command("wsgi:app", None),
            env,
            port,
            tmpdir / "datalook.log",
            ("GET", "/healthz", None),
        )
        quiet = Server(
            "datalook without the refusal log",
            server_command("wsgi:app", None),
            quiet_env,
            quiet_port,
            tmpdir / "quiet.log",
            ("GET", "/healthz", None),
        )
        floor_instance = tmpdir / "floor"
        floor_instance.mkdir()
        floor_port = free_port()
        floor_env = {**env, "DATALOOK_INSTANCE_PATH": str(floor_instance), "PORT": str(floor_port)}
        stack_floor = Server(
            "gunicorn floor",
            server_command("bench.floor:app", None),
            floor_env,
            floor_port,
            tmpdir / "floor.log",
            ("GET", "/healthz", None),
        )
        nginx_floor = NginxFloor(tmpdir / "nginx-floor", free_port())
        database = instance / "datalook.db"
        pairs = []
        try:
            workers = gunicorn_settings(env)["workers"]
            server.start(workers)
            quiet.start(workers)
            stack_floor.start(workers)
            nginx_floor.start()
            tokens_of = {}
            for name, side_env in (("logged", env), ("quiet", quiet_env)):
                tokens_of[name] = keys_for(side_env, options)
            url, quiet_url = server.url + "/event", quiet.url + "/event"
            warm = argparse.Namespace(threads=2, connections=8)
            warm_up(url, warm, [str(good), tokens_of["logged"][0]])
            warm_up(quiet_url, warm, [str(good), tokens_of["quiet"][0]])
            floor_urls = {"stack": stack_floor.url + "/event", "nginx": nginx_floor.url + "/event"}
            for number in range(1, options.rounds + 1):
                valid, flood = tokens_of["logged"]
                alone = one_round(url, (good, valid), None, options)["valid"]
                flooded = one_round(url, (good, valid), (url, bad, flood), options)
                quiet_valid, quiet_flood = tokens_of["quiet"]
                unlogged = one_round(
                    quiet_url, (good, quiet_valid), (quiet_url, bad, quiet_flood), options
                )
                floors = {
                    name: one_round(url, (good, valid), (floor_url, bad, flood), options)
                    for name, floor_url in floor_urls.items()
                }
                pair = {
                    "alone_rps": alone["requests_per_s"],
                    "flooded_rps": flooded["valid"]["requests_per_s"],
                    "flooded_unlogged_rps": unlogged["valid"]["requests_per_s"],
                    "flood_rps": flooded["flood"]["requests_per_s"],
                    "flood_answers": flooded["flood"]["counted"],
                    "alone_p99_ms": alone["p99_ms"],
                    "flooded_p99_ms": flooded["valid"]["p99_ms"],
                }
                for name, answers in floors.items():
                    pair[f"{name}_floor_rps"] = answers["valid"]["requests_per_s"]
                    pair[f"{name}_floor_flood_rps"] = answers["flood"]["requests_per_s"]
                    pair[f"{name}_floor_ratio"] = pair[f"{name}_floor_rps"] / pair["alone_rps"]
                pair["ratio"] = pair["flooded_rps"] / pair["alone_rps"]
                pair["log_ratio"] = pair["flooded_rps"] / pair["flooded_unlogged_rps"]
                pairs.append(pair)
                print(
                    f"round {number}: valid alone {pair['alone_rps']:.0f} req/s, "
                    f"with the flood {pair['flooded_rps']:.0f} req/s "
                    f"(ratio {pair['ratio']:.2f}), with the flood and no log "
                    f"{pair['flooded_unlogged_rps']:.0f} req/s; flood {pair['flood_rps']:.0f} "
                    f"req/s ({pair['flood_answers']['limited']} answered 429, "
                    f"{pair['flood_answers']['other']} answered 400)"
                )
                for name, what in FLOORS.items():
                    print(
                        f"  floor, flood to {what}: valid {pair[f'{name}_floor_rps']:.0f} req/s "
                        f"(ratio {pair[f'{name}_floor_ratio']:.2f}); flood "
                        f"{pair[f'{name}_floor_flood_rps']:.0f} req/s"
                    )
        finally:
            server.stop()
            quiet.stop()
            stack_floor.stop()
            nginx_floor.stop()
        kept = refused_rows(database)
    ratio = statistics.median(pair["ratio"] for pair in pairs)
    log_ratio = statistics.median(pair["log_ratio"] for pair in pairs)
    floor_ratio = {
        name: statistics.median(pair[f"{name}_floor_ratio"] for pair in pairs) for name in FLOORS
    }
    # The app's flooded throughput over the floor's, pair by pair (the "alone" run cancels).
    of_floor = {
        name: statistics.median(pair["flooded_rps"] / pair[f"{name}_floor_rps"] for pair in pairs)
        for name in FLOORS
    }
    report = {
        "pairs": pairs,
        "median_ratio": ratio,
        "median_log_ratio": log_ratio,
        "median_floor_ratio": floor_ratio,
        "median_ratio_of_floor": of_floor,
        "refused_rows_kept": kept,
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "pairs"}, indent=1))
    met = ratio >= 1 - TARGET_SLOWDOWN
    print(
        f"valid key under the flood: median {ratio:.2f} of its throughput alone; target ≥ "
        f"{1 - TARGET_SLOWDOWN:.2f}: {'met' if met else 'NOT met'}"
    )
    for name, what in FLOORS.items():
        print(
            f"floor, flood to {what}: median {floor_ratio[name]:.2f}; DataLook under the flood "
            f"at {of_floor[name]:.2f} of this floor"
        )
    if max(floor_ratio.values()) < 1 - TARGET_SLOWDOWN:
        print(
            "even the floors miss the target: on this machine, the flood's own cost (its client, "
            "nginx) takes that much from the valid key whatever the app does"
        )
    print(
        f"the log's own cost: flooded with the log at {log_ratio:.2f} of flooded without it "
        "(1.00: none)"
    )
    print(f"refused requests kept in the log: {kept} (bound 1,000 per site)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
