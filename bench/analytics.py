"""Analytics benchmark: `python -m bench.analytics [--events N] [--database postgresql://...]`.

Seeds one large site (10M events by default) and one small site (100k) with
`flask demo seed` on a temporary instance, starts the production server as `make run` does
(scripts/serve.sh, through bench.run's Server), logs in, and times the dashboard page and
stats.json for Last 30 days, Last 90 days and All time: p50 and p99 over --requests
requests each, measured by the client on loopback (so they include the HTTP round trip).
Prints a table and writes bench/results/analytics.json. A benchmark, not a test.

With --database postgresql://USER@HOST:PORT/DB the same run goes to a fresh database made
on that server (and dropped afterwards) instead of SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.run import FLASK, ROOT, Server, free_port, git_commit

RESULTS = ROOT / "bench" / "results" / "analytics.json"
BIG, SMALL = "big.bench.example", "small.bench.example"
PERIODS = [("30d", "Last 30 days"), ("90d", "Last 90 days"), ("all", "All time")]
TARGET_P50_MS, TARGET_P99_MS = 150.0, 400.0
EMAIL, PASSWORD = "bench@example.com", "bench pw 1234"


def cli(env: dict[str, str], *args: str) -> str:
    """Run `flask ARGS` against the benchmark instance (no time limit: seeding is long)."""
    result = subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def logged_in(base_url: str) -> requests.Session:
    """A session logged in through the form (with its CSRF token)."""
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = session.post(
        f"{base_url}/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"log-in failed: {answer.status_code}")
    return session


_SITE_IDS = """
import json
from datalook.app import create_app
from datalook.extensions import db
from datalook.models import Site
app = create_app()
with app.app_context():
    print(json.dumps({s.domain: s.id for s in db.session.scalars(db.select(Site))}))
"""


def site_ids(env: dict[str, str]) -> dict[str, int]:
    """The ids of the benchmark's sites, by domain."""
    result = subprocess.run(
        [sys.executable, "-c", _SITE_IDS], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def timed(session: requests.Session, url: str, n: int) -> dict:
    """p50 and p99 (ms) of n GETs after one warm-up; every answer must be 200."""
    session.get(url, timeout=120).raise_for_status()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = session.get(url, timeout=120)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {"p50_ms": round(statistics.median(times), 1), "p99_ms": round(p99, 1), "n": n}


def _pg_database(url: str) -> tuple[str, str]:
    """Make a fresh database on the server of `url`; return (its URL, the admin URL)."""
    from sqlalchemy import create_engine, text

    admin = url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"datalook_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.rsplit("/", 1)[0] + "/" + name, admin


def _pg_drop(database_url: str, admin: str) -> None:
    """Drop the benchmark's database."""
    from sqlalchemy import create_engine, text

    name = database_url.rsplit("/", 1)[1]
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events of the big site")
    parser.add_argument("--small-events", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90, help="days the events spread over")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL")
    parser.add_argument("--database", help="postgresql://... server to run on instead of SQLite")
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Seed, serve, time; print the table and write the JSON file; 0 if targets pass."""
    options = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    started = datetime.now(UTC)
    database_url = admin = None
    with tempfile.TemporaryDirectory(prefix="datalook-analytics-bench-") as tmp:
        tmpdir = Path(tmp)
        instance = tmpdir / "instance"
        instance.mkdir()
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)},
            "DATALOOK_INSTANCE_PATH": str(instance),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(options.workers),
        }
        if options.database:
            database_url, admin = _pg_database(options.database)
            env["DATABASE_URL"] = database_url
        server = Server(
            "datalook",
            [str(ROOT / "scripts" / "serve.sh")],
            env,
            port,
            tmpdir / "server.log",
            ("GET", "/healthz", None),
        )
        results: dict = {"started": started.isoformat(), "commit": git_commit()}
        try:
            cli(env, "db", "upgrade")
            cli(env, "users", "create", EMAIL, "--password", PASSWORD)
            for domain in (BIG, SMALL):
                cli(env, "sites", "create", domain, "--owner", EMAIL)
            seeded = {}
            for domain, n in ((BIG, options.events), (SMALL, options.small_events)):
                print(f"Seeding {n:,} events into {domain} ...", flush=True)
                t0 = time.monotonic()
                out = cli(
                    env,
                    "demo",
                    "seed",
                    "--site",
                    domain,
                    "--events",
                    str(n),
                    "--days",
                    str(options.days),
                )
                seeded[domain] = {"events": n, "seconds": round(time.monotonic() - t0, 1)}
                print("  " + out.strip(), flush=True)
            results["seeded"] = seeded
            server.start(options.workers)
            session = logged_in(server.url)
            ids = site_ids(env)
            rows = []
            for domain in (BIG, SMALL):
                for period, label in PERIODS:
                    for what, path in (("page", "/"), ("stats.json", "/stats.json")):
                        url = f"{server.url}/sites/{ids[domain]}{path}?period={period}"
                        figures = timed(session, url, options.requests)
                        rows.append({"site": domain, "period": label, "what": what, **figures})
                        print(
                            f"  {domain:<22} {label:<14} {what:<11}"
                            f" p50 {figures['p50_ms']:7.1f} ms   p99 {figures['p99_ms']:7.1f} ms",
                            flush=True,
                        )
            results["timings"] = rows
        finally:
            server.stop()
            if database_url:
                _pg_drop(database_url, admin)
    results["database"] = "postgresql" if options.database else "sqlite"
    results["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    big = [r for r in results["timings"] if r["site"] == BIG]
    ok = all(r["p50_ms"] <= TARGET_P50_MS and r["p99_ms"] <= TARGET_P99_MS for r in big)
    print(
        f"Targets (big site: p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms):",
        "met" if ok else "MISSED",
    )
    print(f"Written to {RESULTS.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
