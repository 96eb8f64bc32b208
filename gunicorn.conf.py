"""gunicorn settings for `make run`: HOST, PORT and WEB_CONCURRENCY from the environment."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from datalook.config import ConfigError, gunicorn_settings  # noqa: E402

try:
    _settings = gunicorn_settings(os.environ)
except ConfigError as exc:
    sys.stderr.write(f"datalook: configuration error: {exc}\n")
    sys.exit(2)

bind = f"{_settings['host']}:{_settings['port']}"
workers = _settings["workers"]
worker_class = "sync"
# Workers finish in-flight requests on SIGTERM before exiting (and flush their counters).
graceful_timeout = 20
timeout = 30
accesslog = "-" if os.environ.get("DATALOOK_ACCESS_LOG") else None
# Each worker loads the app itself: nothing (database pools, rate-limit connections) is
# shared across a fork.
preload_app = False
# gunicorn's control socket defaults to one path per user; several servers on one machine
# (tests, the benchmark, operators' instances) would fight over it. DataLook does not use it.
control_socket_disable = True


def when_ready(server):
    """Tell the person who typed `make run` where to go."""
    host = _settings["host"]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only
    server.log.info("DataLook is running: open http://%s:%s", shown, _settings["port"])
    print(f"\n  DataLook is running: open http://{shown}:{_settings['port']}\n", flush=True)


def post_worker_init(worker):
    """Move the loaded app's objects out of the garbage collector's regular passes.

    A worker holds a large, long-lived heap (Flask, SQLAlchemy, Pygments); without this,
    every full collection walks all of it again. Measured with the benchmark's A/B runs:
    about 7% more ingestion requests per second.
    """
    import gc

    gc.collect()
    gc.freeze()
    # One worker per host wins the lead and copies the SQLite WAL into the database on its
    # own thread, so that no writer waits for a checkpoint (datalook/wal_checkpoints.py).
    from datalook.wal_checkpoints import start_for

    start_for(worker.wsgi)
    # One worker per host also folds new events into the report summaries every second.
    from datalook.analytics import summaries

    summaries.start_for(worker.wsgi)
