"""Analytics benchmark: `python -m bench.analytics [--events N] [--database postgresql://...]`.

Seeds one large site (10M events by default) and one small site (100k) with
`flask demo seed` (sessions over plausible page walks; the seed leaves summaries, sessions
and saved funnels derived) on a temporary instance, starts the production server as
`make run` does (scripts/serve.sh, through bench.run's Server: granian, nginx and the fold
process), logs in, and times, measured by a client on loopback (whole HTTP round trip):

1. the dashboard page and stats.json for Last 30 days, Last 90 days and All time, on both
   sites (the small one must not be slowed by the large one);
2. on the large site over Last 30 days, where visitors come from: breakdown.json
   unfiltered (channel, source, page, country, device), breakdown.json and stats.json with
   one filter and with two (FILTERS), and attribution.json of the seed's paid rule by source
   (models first, last and linear);
3. a saved 4-step funnel on the large site (not with --skip-saved-funnel, which times the
   rest of this step): saved through the builder form, its first derivation timed
   (`flask funnels catch-up` right after the save, beside the fold process), then over
   Last 30 days the saved funnel's JSON, the same funnel unsaved
   (funnel.json) and the journeys report (journeys.json); and unsaved funnels that no
   process has seen yet (first views, as a builder's every edit: the steps with another
   window each, and every other one without its last step), one request each.

After seeding, when this version has `flask analytics store build` (the columnar copy the
acquisition reports read), it is built (`--all`) and its time recorded.

p50 and p99 over --requests (stats) or --funnel-requests (funnels) requests after one
warm-up each. Prints a table with the targets and writes bench/results/analytics.json.
A benchmark, not a test.

With --database postgresql://USER@HOST:PORT/DB the same run goes to a fresh database made
on that server (and dropped afterwards) instead of SQLite. With --instance DIR it reuses an
instance folder seeded as this bench seeds (the saved funnel is deleted at the end), or
seeds it first when it holds no database yet (and keeps it); with --database as well, the
PostgreSQL database made for it is kept, its URL written in the folder (`database_url`), and
reused by the next run with that folder. --seed-only stops after seeding (and the build).
With --lock FILE each timed phase holds an exclusive flock on FILE (a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import requests

from bench.report import git_commit
from bench.servers import FLASK, ROOT, Server, free_port

RESULTS = ROOT / "bench" / "results" / "analytics.json"
BIG, SMALL = "big.bench.example", "small.bench.example"
PERIODS = [("30d", "Last 30 days"), ("90d", "Last 90 days"), ("all", "All time")]
TARGET_P50_MS, TARGET_P99_MS = 150.0, 400.0
# Funnels and journeys over Last 30 days: p50 targets (no p99 target).
FUNNEL_TARGETS_MS = {"saved funnel": 300.0, "unsaved funnel": 3000.0, "journeys": 500.0}
# An unsaved funnel's first view (no process has seen the definition): (p50, p99) in ms.
FIRST_VIEW_MS = (1000.0, 2000.0)
# Where visitors come from, Last 30 days on the large site: (p50, p99) targets in ms.
UNFILTERED_MS, FILTERED_MS, ATTRIBUTION_MS = (150.0, 400.0), (1000.0, 2000.0), (1000.0, 2000.0)
BREAKDOWNS = ["channel", "source", "page", "country", "device"]
FILTERS = [["channel==Organic Search"], ["channel==Organic Search", "device==mobile"]]
PAID_RULE = "paid-customer"  # the seed's paid rule
MODELS = ["first", "last", "linear"]
EMAIL, PASSWORD = "bench@example.com", "bench pw 1234"
WINDOW = "24h"
STEPS = [
    {"event_name": "pageview", "page_path": "/"},
    {"event_name": "pageview", "page_path": "/pricing"},
    {"event_name": "pageview", "page_path": "/signup"},
    {"event_name": "success", "name": "paid-customer"},
]


@contextlib.contextmanager
def held(lock: str | None) -> Iterator[None]:
    """Hold an exclusive flock on `lock` (if given) for the block: one timed phase."""
    if not lock:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cli(env: dict[str, str], *args: str) -> str:
    """Run `flask ARGS` against the benchmark instance (no time limit: seeding is long)."""
    result = subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _csrf(html: str) -> str:
    """The CSRF token of a rendered form."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    if match is None:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1)


def logged_in(base_url: str) -> requests.Session:
    """A session logged in through the form (with its CSRF token)."""
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=30).text
    answer = session.post(
        f"{base_url}/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(page)},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"log-in failed: {answer.status_code}")
    return session


def save_funnel(session: requests.Session, site_url: str) -> int:
    """Save the bench's funnel through the builder form, as a browser does; return its id."""
    page = session.get(f"{site_url}/funnels/new", timeout=60).text
    form = {
        "csrf_token": _csrf(page),
        "name": "Bench funnel",
        "window": WINDOW,
        "mode": "ordered",
        "event_name": [s["event_name"] for s in STEPS],
        "page_path": [s.get("page_path") or "" for s in STEPS],
        "rule_name": [s.get("name") or "" for s in STEPS],
        "property_key": ["" for _ in STEPS],
        "property_value": ["" for _ in STEPS],
    }
    answer = session.post(f"{site_url}/funnels/", data=form, allow_redirects=False, timeout=600)
    if answer.status_code != 302:
        raise RuntimeError(f"saving the funnel failed: {answer.status_code}")
    return int(answer.headers["Location"].rstrip("/").split("/")[-1])


_DELETE_FUNNELS = """
from sqlalchemy import select
from datalook.analytics.funnels import repository as funnel_store
from datalook.analytics.funnels.models import Funnel
from datalook.app import create_app
from datalook.extensions import db
app = create_app()
with app.app_context():
    for funnel in db.session.scalars(select(Funnel).where(Funnel.name == "Bench funnel")).all():
        funnel_store.delete_funnel(db.session, funnel)
"""


def run_python(env: dict[str, str], code: str, *args: str) -> str:
    """Run `code` in a fresh Python process of the project with `env`; its output (a
    RuntimeError with the end of its errors when it fails)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout


def delete_funnels(env: dict[str, str]) -> None:
    """Delete the bench's funnels from a reused instance, with the server stopped (their
    derived rows are purged by the next fold process or `flask funnels catch-up`)."""
    try:
        run_python(env, _DELETE_FUNNELS)
    except RuntimeError as failed:
        print(f"could not delete the bench's funnel: {failed}")


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
    return json.loads(run_python(env, _SITE_IDS).strip().splitlines()[-1])


def timed(session: requests.Session, url: str, n: int) -> dict:
    """p50 and p99 (ms) of n GETs after one warm-up; every answer must be 200 (the first
    that is not is recorded as the row's error, without figures, and the bench goes on)."""
    times = []
    try:
        session.get(url, timeout=600).raise_for_status()
        for _ in range(n):
            started = time.perf_counter()
            answer = session.get(url, timeout=600)
            times.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    except requests.RequestException as error:
        print(f"  {url}: {error}", flush=True)
        return {"p50_ms": None, "p99_ms": None, "n": len(times), "error": str(error)[:300]}
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {"p50_ms": round(statistics.median(times), 1), "p99_ms": round(p99, 1), "n": n}


def timed_each(session: requests.Session, urls: list[str]) -> dict:
    """p50 and p99 (ms) of one GET of each URL (each a first view: nothing of it cached),
    after one warm-up GET of the first; every answer must be 200 (as `timed`)."""
    times = []
    try:
        session.get(urls[0], timeout=600).raise_for_status()
        for url in urls[1:]:
            started = time.perf_counter()
            answer = session.get(url, timeout=600)
            times.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    except requests.RequestException as error:
        print(f"  {urls[0]}: {error}", flush=True)
        return {"p50_ms": None, "p99_ms": None, "n": len(times), "error": str(error)[:300]}
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {"p50_ms": round(statistics.median(times), 1), "p99_ms": round(p99, 1), "n": len(times)}


def first_view_urls(site_url: str, n: int) -> list[str]:
    """n + 1 unsaved funnels over Last 30 days that no process has seen: the bench's steps
    with another window each (25 h, 26 h, …), and every other one without its last step
    (as a builder's edits change the definition)."""
    urls = []
    for i in range(n + 1):
        steps = STEPS if i % 2 else STEPS[:-1]
        args = [("step", json.dumps(s)) for s in steps]
        args += [("window", f"{25 + i}h"), ("period", "30d")]
        urls.append(f"{site_url}/funnel.json?{urlencode(args)}")
    return urls


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
    parser.add_argument("--requests", type=int, default=30, help="timed requests per stats URL")
    parser.add_argument(
        "--funnel-requests", type=int, default=10, help="timed requests per funnel/journeys URL"
    )
    parser.add_argument("--database", help="postgresql://... server to run on instead of SQLite")
    parser.add_argument(
        "--instance", type=Path, help="reuse this instance folder, seeded as the bench seeds"
    )
    parser.add_argument("--lock", help="hold an exclusive flock on this file in each phase")
    parser.add_argument(
        "--skip-funnels",
        action="store_true",
        help="time the dashboard and stats.json only (a first funnel derivation at 10M is long)",
    )
    parser.add_argument(
        "--skip-saved-funnel",
        action="store_true",
        help="time the unsaved funnels and journeys without saving and deriving a funnel",
    )
    parser.add_argument(
        "--seed-only", action="store_true", help="seed (into --instance) and build, time nothing"
    )
    parser.add_argument(
        "--acquisition-requests",
        type=int,
        default=20,
        help="timed requests per breakdown, filtered and attribution URL",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON result file")
    return parser.parse_args(argv)


def seed_sites(env: dict[str, str], options: argparse.Namespace) -> dict:
    """Create the user and both sites and seed them; the seconds each seed took."""
    cli(env, "db", "upgrade")
    cli(env, "users", "create", EMAIL, "--password", PASSWORD)
    for domain in (BIG, SMALL):
        cli(env, "sites", "create", domain, "--owner", EMAIL)
    seeded = {}
    for domain, n in ((BIG, options.events), (SMALL, options.small_events)):
        print(f"Seeding {n:,} events into {domain} ...", flush=True)
        with held(options.lock):
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
            seeded[domain] = {
                "events": n,
                "seconds": round(time.monotonic() - t0, 1),
                "output": out.strip(),
            }
        print("  " + out.strip(), flush=True)
    return seeded


def build_store(env: dict[str, str], options: argparse.Namespace) -> dict | None:
    """Build the columnar copy of the settled events (`flask analytics store build --all`)
    when this version has it; its seconds and output (None without the command)."""
    probe = subprocess.run(
        [*FLASK, "analytics", "store", "build", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        print("No `flask analytics store build` in this version: nothing to build.", flush=True)
        return None
    print("Building the columnar copy (flask analytics store build --all) ...", flush=True)
    with held(options.lock):
        t0 = time.monotonic()
        out = cli(env, "analytics", "store", "build", "--all")
        built = {"seconds": round(time.monotonic() - t0, 1), "output": out.strip()[-2000:]}
    print(f"  built in {built['seconds']} s: {out.strip()[-300:]}", flush=True)
    return built


def time_reports(session, server_url: str, ids: dict[str, int], options) -> list[dict]:
    """The dashboard page and stats.json of each period on both sites."""
    rows = []
    with held(options.lock):
        for domain in (BIG, SMALL):
            for period, label in PERIODS:
                for what, path in (("page", "/"), ("stats.json", "/stats.json")):
                    url = f"{server_url}/sites/{ids[domain]}{path}?period={period}"
                    figures = timed(session, url, options.requests)
                    rows.append({"site": domain, "period": label, "what": what, **figures})
                    print(
                        f"  {domain:<22} {label:<14} {what:<15} {_shown(figures)}",
                        flush=True,
                    )
    return rows


def acquisition_urls(site_url: str) -> list[tuple[str, str, tuple[float, float]]]:
    """(what, URL, (p50, p99) target in ms) of the acquisition scenarios, Last 30 days."""
    urls = []
    for dimension in BREAKDOWNS:
        query = urlencode({"dimension": dimension, "period": "30d"})
        urls.append((f"breakdown {dimension}", f"{site_url}/breakdown.json?{query}", UNFILTERED_MS))
    for filters in FILTERS:
        args = [("period", "30d"), *(("filter", f) for f in filters)]
        n = f"{len(filters)} filter{'s' if len(filters) > 1 else ''}"
        query = urlencode([*args, ("dimension", "source")])
        urls.append((f"breakdown source, {n}", f"{site_url}/breakdown.json?{query}", FILTERED_MS))
        urls.append((f"stats.json, {n}", f"{site_url}/stats.json?{urlencode(args)}", FILTERED_MS))
    for model in MODELS:
        query = urlencode(
            {"rule": PAID_RULE, "model": model, "dimension": "source", "period": "30d"}
        )
        url = f"{site_url}/attribution.json?{query}"
        urls.append((f"attribution {model}, source", url, ATTRIBUTION_MS))
    return urls


def time_acquisition(session, site_url: str, options) -> list[dict]:
    """Breakdowns, filtered reports and attribution on the large site, Last 30 days."""
    rows = []
    with held(options.lock):
        for what, url, (p50, p99) in acquisition_urls(site_url):
            figures = timed(session, url, options.acquisition_requests)
            rows.append(
                {
                    "site": BIG,
                    "period": "Last 30 days",
                    "what": what,
                    **figures,
                    "target_p50_ms": p50,
                    "target_p99_ms": p99,
                }
            )
            print(
                f"  {BIG:<22} {'Last 30 days':<14} {what:<32} {_shown(figures)}",
                flush=True,
            )
    return rows


def _shown(figures: dict) -> str:
    """A timed row's figures in words (or its error)."""
    if figures["p50_ms"] is None:
        return f"failed: {figures['error'][:80]}"
    return f"p50 {figures['p50_ms']:8.1f} ms   p99 {figures['p99_ms']:8.1f} ms"


_WAIT_DERIVED = """
import sys, time
from sqlalchemy import func, select
from datalook.analytics.funnels.derivation import current, cursor_name
from datalook.analytics.funnels.models import DerivedCursor
from datalook.app import create_app
from datalook.extensions import db
from datalook.models import Event
funnel_id, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
app = create_app()
with app.app_context():
    newest = db.session.scalar(select(func.max(Event.id)))
    while time.monotonic() < deadline:
        # Looked up each time: a derivation staged from the copy takes the first one's place.
        name = cursor_name(current(db.session, funnel_id).id)
        at = db.session.scalar(
            select(DerivedCursor.last_event_id).where(DerivedCursor.name == name)
        )
        db.session.rollback()  # a fresh snapshot each time
        if (at or 0) >= newest:
            print(newest)
            break
        time.sleep(0.5)
    else:
        sys.exit("the funnel was not derived in time")
"""


def wait_derived(env: dict[str, str], funnel_id: int, timeout_s: float = 3600) -> None:
    """Wait until the fold process has derived the saved funnel up to the newest event.

    Only reads: the fold process derives it, a batch per tick within its budget.
    """
    run_python(env, _WAIT_DERIVED, str(funnel_id), str(timeout_s))


def time_funnels(session, env, site_url: str, options) -> tuple[dict, list[dict], int]:
    """Save the funnel, time its first derivation, then time the three reports."""
    with held(options.lock):
        t0 = time.monotonic()
        funnel_id = save_funnel(session, site_url)
        saved_s = time.monotonic() - t0
        # At full speed beside the fold process (which derives a batch per tick within
        # its budget): what an operator's `flask funnels catch-up` takes.
        cli(env, "funnels", "catch-up")
        wait_derived(env, funnel_id)
        derivation = {
            "save_request_s": round(saved_s, 2),
            "caught_up_s": round(time.monotonic() - t0, 1),
            "by": "flask funnels catch-up right after the save, beside the fold process",
        }
    print(
        f"  saved funnel {funnel_id}: save request {saved_s:.2f} s, derived by"
        f" `flask funnels catch-up` {derivation['caught_up_s']:.1f} s after the save",
        flush=True,
    )
    saved = {"saved funnel": f"{site_url}/funnels/{funnel_id}.json?period=30d"}
    return derivation, time_unsaved(session, site_url, options, saved), funnel_id


def time_unsaved(session, site_url: str, options, saved: dict[str, str]) -> list[dict]:
    """Time the `saved` URLs, the unsaved funnel, the journeys report and the unsaved
    funnels' first views (over Last 30 days)."""
    step_args = urlencode(
        [("step", json.dumps(s)) for s in STEPS] + [("window", WINDOW), ("period", "30d")]
    )
    urls = {
        **saved,
        "unsaved funnel": f"{site_url}/funnel.json?{step_args}",
        "journeys": f"{site_url}/journeys.json?period=30d",
    }
    rows = []
    with held(options.lock):
        for what, url in urls.items():
            figures = timed(session, url, options.funnel_requests)
            rows.append({"site": BIG, "period": "Last 30 days", "what": what, **figures})
            print(
                f"  {BIG:<22} {'Last 30 days':<14} {what:<15} {_shown(figures)}",
                flush=True,
            )
        figures = timed_each(session, first_view_urls(site_url, options.funnel_requests))
        what = "unsaved funnel, first views"
        rows.append(
            {
                "site": BIG,
                "period": "Last 30 days",
                "what": what,
                **figures,
                "target_p50_ms": FIRST_VIEW_MS[0],
                "target_p99_ms": FIRST_VIEW_MS[1],
            }
        )
        print(f"  {BIG:<22} {'Last 30 days':<14} {what:<15} {_shown(figures)}", flush=True)
    return rows


def verdicts(rows: list[dict]) -> tuple[list[str], bool]:
    """The table's lines (with targets) and whether every target of the big site is met."""
    lines = [f"{'site':<22} {'range':<14} {'what':<32}{'p50 ms':>9}{'p99 ms':>9}  target"]
    ok = True
    for row in rows:
        target = ""
        if row["p50_ms"] is None:
            ok &= row["site"] != BIG
            lines.append(
                f"{row['site']:<22} {row['period']:<14} {row['what']:<32}"
                f"{'—':>9}{'—':>9}  failed: {row['error'][:60]}"
            )
            continue
        if row["site"] == BIG:
            if "target_p50_ms" in row:
                p50, p99 = row["target_p50_ms"], row["target_p99_ms"]
                met = row["p50_ms"] <= p50 and row["p99_ms"] <= p99
                target = f"p50 <= {p50:.0f}, p99 <= {p99:.0f}: {'ok' if met else 'MISS'}"
            elif row["what"] in FUNNEL_TARGETS_MS:
                goal = FUNNEL_TARGETS_MS[row["what"]]
                met = row["p50_ms"] <= goal
                target = f"p50 <= {goal:.0f}: {'ok' if met else 'MISS'}"
            else:
                met = row["p50_ms"] <= TARGET_P50_MS and row["p99_ms"] <= TARGET_P99_MS
                target = (
                    f"p50 <= {TARGET_P50_MS:.0f}, p99 <= {TARGET_P99_MS:.0f}:"
                    f" {'ok' if met else 'MISS'}"
                )
            ok &= met
        lines.append(
            f"{row['site']:<22} {row['period']:<14} {row['what']:<32}"
            f"{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}  {target}"
        )
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    """Seed, serve, time; print the table and write the JSON file; 0 if targets pass."""
    options = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    started = datetime.now(UTC)
    database_url = admin = None
    with tempfile.TemporaryDirectory(prefix="datalook-analytics-bench-") as tmp:
        tmpdir = Path(tmp)
        instance = options.instance or tmpdir / "instance"
        instance.mkdir(exist_ok=True)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)},
            "DATALOOK_INSTANCE_PATH": str(instance),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WEB_CONCURRENCY": str(options.workers),
        }
        kept = instance / "database_url"
        seeded_before = (
            bool(options.instance)
            and (kept if options.database else instance / "datalook.db").exists()
        )
        if options.database and seeded_before:
            env["DATABASE_URL"] = kept.read_text().strip()  # seeded by an earlier run
        elif options.database:
            database_url, admin = _pg_database(options.database)
            env["DATABASE_URL"] = database_url
            if options.instance:  # kept for later runs instead of dropped
                kept.write_text(database_url)
                database_url = None
        server = Server(
            "datalook",
            [str(ROOT / "scripts" / "serve.sh")],
            env,
            port,
            tmpdir / "server.log",
            ("GET", "/healthz", None),
        )
        results: dict = {
            "started": started.isoformat(),
            "commit": git_commit(),
            "load_before": os.getloadavg(),
            "big_events": options.events,
        }
        try:
            if seeded_before:
                results["seeded"] = f"reused instance {options.instance.name}"
                cli(env, "db", "upgrade")  # a folder seeded by an older version
            else:
                results["seeded"] = seed_sites(env, options)
            # Missing segments only: nothing left to build in a folder built before.
            results["store_build"] = build_store(env, options)
            results["timings"] = []
            if not options.seed_only:
                results["load_before_timings"] = os.getloadavg()
                server.start(options.workers)
                time_everything(server.url, env, options, results)
        finally:
            server.stop()
            if options.instance and not options.seed_only:
                delete_funnels(env)
            if database_url:
                _pg_drop(database_url, admin)
    results["database"] = "postgresql" if options.database else "sqlite"
    results["load_after"] = os.getloadavg()
    return report(results, options)


def time_everything(server_url: str, env: dict[str, str], options, results: dict) -> None:
    """Log in and time every scenario, into results["timings"]."""
    session = logged_in(server_url)
    ids = site_ids(env)
    results["timings"] = time_reports(session, server_url, ids, options)
    site_url = f"{server_url}/sites/{ids[BIG]}"
    results["timings"] += time_acquisition(session, site_url, options)
    if options.skip_funnels:
        return
    if options.skip_saved_funnel:  # no funnel saved: its first derivation takes long
        results["timings"] += time_unsaved(session, site_url, options, {})
        return
    derivation, funnel_rows, _ = time_funnels(session, env, site_url, options)
    results["funnel_derivation"] = derivation
    results["timings"] += funnel_rows


def report(results: dict, options) -> int:
    """Write the JSON file and print the table; 0 if every target of the big site is met."""
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2))
    if options.seed_only:
        print(f"Seeded only; written to {options.output}")
        return 0
    lines, ok = verdicts(results["timings"])
    print()
    print("\n".join(lines))
    if "funnel_derivation" in results:
        print(
            f"Saved funnel's first derivation: {results['funnel_derivation']['caught_up_s']} s"
            " after the save"
        )
    print("Targets (big site):", "met" if ok else "MISSED")
    print(f"Written to {options.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
