"""gunicorn settings (HOST, PORT and WEB_CONCURRENCY from the environment) for the
conventional deployment the benchmark compares with: `make run` serves with granian
(server.py); `scripts/front.sh .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app` serves the
same app on gunicorn's sync workers behind the same nginx front (gunicorn is in
requirements-dev.txt)."""

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
    """Prepare each worker once its app is loaded (datalook/lifecycle.py)."""
    from datalook.lifecycle import worker_started

    worker_started(worker.wsgi)
