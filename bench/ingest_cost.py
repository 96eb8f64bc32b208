"""What one event costs inside the app: `python -m bench.ingest_cost`. A benchmark, not a test.

No server, no network: the WSGI app (as `make run` configures it, behind its trusted front,
on a fresh migrated SQLite file) is called directly with prepared requests, so the figure
is the app's own CPU per event, the part that the servers and the front do not hide. It
prints microseconds per event for:

- `POST /events`, 100 events per request: the docs' example event (what `bench.run` sends);
  varied events (each its own user, event id, time and properties); the same with a
  `context` (address, User-Agent, referrer, campaign);
- `POST /event`, the docs' example event: microseconds per request.

`--profile NAME` runs that scenario under cProfile and prints its top entries.
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
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

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


def _app_and_token(folder: Path) -> tuple[Callable, str]:
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
    return app.wsgi_app, made.token


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


def main(argv: list[str] | None = None) -> int:
    """Time each scenario in rounds; print the median µs per event (per request for /event)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="batches per round (60)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=("example", "varied", "context", "one"))
    parser.add_argument("--top", type=int, default=30)
    options = parser.parse_args(argv)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        app, token = _app_and_token(Path(folder))
        kinds = [options.profile] if options.profile else ["example", "varied", "context", "one"]
        for kind in kinds:
            n = options.requests * (BATCH if kind == "one" else 1)
            _run(app, token, kind, _bodies(kind, max(n // 10, 5), rng))  # warm-up
            if options.profile:
                bodies = _bodies(kind, n, rng)
                profiler = cProfile.Profile()
                profiler.enable()
                _run(app, token, kind, bodies)
                profiler.disable()
                stats = pstats.Stats(profiler).sort_stats("tottime")
                stats.print_stats(options.top)
                continue
            figures = [_run(app, token, kind, _bodies(kind, n, rng)) for _ in range(options.rounds)]
            unit = "request" if kind == "one" else "event"
            print(
                f"{kind:8} {statistics.median(figures):7.1f} us/{unit}"
                f"  (rounds {min(figures):.1f}-{max(figures):.1f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
