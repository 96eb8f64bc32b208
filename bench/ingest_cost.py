"""What one event costs inside the app: `python -m bench.ingest_cost`. A benchmark, not a test.

No server, no network: the WSGI app (as `make run` configures it, behind its trusted front,
on a fresh migrated SQLite file) is called directly with prepared requests, so the figure
is the app's own CPU per event, the part that the servers and the front do not hide. It
prints microseconds per event for:

- `POST /events`, 100 events per request: the docs' example event (what `bench.run` sends);
  varied events (each its own user, event id, time and properties); the same with a
  `context` (address, User-Agent, referrer, campaign);
- `POST /event`, the docs' example event: microseconds per request.

`--profile NAME` runs that scenario under cProfile and prints its top entries; `--parts`
then prints each scenario's CPU per event by part of the path (bench/cost_parts.py).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import cost_parts
from bench.wrk import example_event

BATCH = 100
_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)
_REFERRERS = ("https://www.google.com/", "https://news.ycombinator.com/item", None)


def _varied(index: int, context: bool, rng: random.Random) -> dict:
    """A realistic server event: its own user, id and time, a few properties."""
    moment = datetime.now(UTC) - timedelta(seconds=rng.randint(0, 3600))
    event: dict = {
        "event_name": rng.choice(("success", "custom", "pageview")),
        "page_path": f"/pricing/{index % 7}?ref=mail",
        "success_user_id": f"user_{rng.randint(1, 100_000)}",
        "event_id": uuid.uuid4().hex,
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "properties": {"plan": rng.choice(("starter", "pro")), "seats": rng.randint(1, 50)},
    }
    if event["event_name"] == "success":
        event["name"] = rng.choice(("paid-customer", "trial-started"))
        event["success_value"] = rng.choice((9.99, 49, 120.5))
    if context:
        event["context"] = {
            "ip": f"203.0.113.{rng.randint(1, 254)}",
            "user_agent": rng.choice(_AGENTS),
            "referrer": rng.choice(_REFERRERS),
            "utm": {"source": "newsletter", "medium": "email"},
        }
    return event


def _bodies(kind: str, n: int, rng: random.Random) -> list[bytes]:
    """`n` request bodies of one scenario."""
    if kind == "one":
        return [orjson.dumps(example_event())] * n
    if kind == "example":
        return [orjson.dumps({"events": [example_event()] * BATCH})] * n
    context = kind == "context"
    return [
        orjson.dumps({"events": [_varied(i, context, rng) for i in range(BATCH)]}) for _ in range(n)
    ]


def _environ(path: str, body: bytes, token: str) -> dict:
    """A request as the front passes it on (its forwarded headers and stamp included)."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:5000",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_X_FORWARDED_FOR": "198.51.100.7",
        "HTTP_X_FORWARDED_PROTO": "http",
        "HTTP_X_REQUEST_START": f"t={time.time():.3f}",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.input_terminated": False,
        "wsgi.errors": io.StringIO(),
    }


def _app_and_token(folder: Path) -> tuple[Any, str]:
    """The app on a fresh migrated database in `folder`, and a key with a raised limit."""
    os.environ["DATALOOK_INSTANCE_PATH"] = str(folder)
    os.environ.setdefault("TRUSTED_PROXIES", "1")
    from flask_migrate import upgrade

    from datalook.app import create_app
    from datalook.extensions import db
    from tests.factories import create_token

    app = create_app()
    with app.app_context():
        upgrade()
    made = create_token(app, rate_limit="100000000 per 10 seconds")
    with app.app_context():
        db.session.remove()
    return app, made.token


def _call(app: Callable, path: str, body: bytes, token: str) -> str:
    """One request through the WSGI app; its status line."""
    status: list[str] = []
    chunks = app(_environ(path, body, token), lambda s, h, e=None: status.append(s))
    b"".join(chunks)
    return status[0]


def _run(app: Callable, token: str, kind: str, bodies: list[bytes]) -> float:
    """Post every body; microseconds of process CPU per event (per request for /event)."""
    path = "/event" if kind == "one" else "/events"
    per = 1 if kind == "one" else BATCH
    start = time.process_time()
    for body in bodies:
        status = _call(app, path, body, token)
        if not status.startswith(("200", "204")):
            raise RuntimeError(f"{kind}: {status}")
    return (time.process_time() - start) / (len(bodies) * per) * 1e6


def _fold_cost(app: Callable, flask_app, token: str, options: argparse.Namespace) -> None:
    """Store `--fold` batches of each batch scenario, then time one catch-up of everything the
    fold process derives from them (as its tick does), in events per CPU second."""
    from datalook.analytics import identity
    from datalook.analytics.catch_up import catch_up_all
    from datalook.analytics.rollups.fold import catch_up
    from datalook.extensions import db

    rng = random.Random(11)
    stored = 0
    for kind in options.fold_kinds.split(","):
        for body in _bodies(kind, options.fold, rng):
            _call(app, "/events", body, token)
            stored += BATCH
    profiler = cProfile.Profile() if options.profile == "fold" else None
    with flask_app.app_context():
        parts = {}
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        identity.apply_pending(db.session())
        parts["links"] = time.process_time() - started
        catch_up(db.engine, flask_app.instance_path)
        parts["summaries"] = time.process_time() - started - sum(parts.values())
        catch_up_all(db.session())
        parts["sessions, kinds, funnels"] = time.process_time() - started - sum(parts.values())
        if profiler is not None:
            profiler.disable()
        db.session.remove()
    total = sum(parts.values())
    shown = ", ".join(f"{name} {seconds * 1e6 / stored:.1f}" for name, seconds in parts.items())
    print(f"fold     {stored / total:9.0f} events per CPU second  (us/event: {shown})")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(options.sort).print_stats(options.top)


def main(argv: list[str] | None = None) -> int:
    """Time each scenario in rounds; print the median µs per event (per request for /event)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="batches per round (20)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--profile", choices=("example", "varied", "context", "one", "fold"))
    parser.add_argument(
        "--fold", type=int, default=0, help="then time the fold of this many batches of each"
    )
    parser.add_argument("--fold-kinds", default="example,varied,context")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", help="tottime or cumulative")
    parser.add_argument("--parts", action="store_true", help="then the CPU per event by part")
    options = parser.parse_args(argv)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        flask_app, token = _app_and_token(Path(folder))
        app = flask_app.wsgi_app
        if options.fold or options.profile == "fold":
            _fold_cost(app, flask_app, token, options)
            return 0
        kinds = [options.profile] if options.profile else ["example", "varied", "context", "one"]
        figures: dict[str, list[float]] = {}
        for kind in kinds:
            n = options.requests * (BATCH if kind == "one" else 1)
            _run(app, token, kind, _bodies(kind, max(n // 10, 5), rng))  # warm-up
            if options.profile:
                bodies = _bodies(kind, n, rng)
                profiler = cProfile.Profile()
                profiler.enable()
                _run(app, token, kind, bodies)
                profiler.disable()
                stats = pstats.Stats(profiler).sort_stats(options.sort)
                stats.print_stats(options.top)
                continue
            figures[kind] = []
        # Rounds of each scenario in turn, so that a busy moment of the machine is shared.
        for _ in range(0 if options.profile else options.rounds):
            for kind in kinds:
                n = options.requests * (BATCH if kind == "one" else 1)
                figures[kind].append(_run(app, token, kind, _bodies(kind, n, rng)))
        for kind, found in figures.items():
            unit = "request" if kind == "one" else "event"
            print(
                f"{kind:8} median {statistics.median(found):7.1f}  least {min(found):7.1f}"
                f" us/{unit}  ({len(found)} rounds)"
            )
        print(f"threads: {len(threading.enumerate())}")
        if options.parts:
            for kind, found in figures.items():
                n = options.requests * (BATCH if kind == "one" else 1)
                bodies = _bodies(kind, n, rng)
                stats = cost_parts.profiled(lambda: _run(app, token, kind, bodies))  # noqa: B023
                unit = "request" if kind == "one" else "event"
                cost_parts.report(kind, statistics.median(found), cost_parts.shares(stats), unit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
