"""The WSGI server of `make run`: granian's worker processes serve the app behind nginx.

scripts/serve.sh runs it through scripts/front.sh, which adds `--bind 127.0.0.1:PORT` (the
private port nginx proxies to), as it does for gunicorn:

    .venv/bin/python server.py [--app MODULE:NAME] --bind HOST:PORT

WEB_CONCURRENCY worker processes (datalook.config), each serving requests on WEB_THREADS
Python threads (1 by default: one request at a time, as gunicorn's sync workers did; more
let a worker's concurrent events share a commit, ingest/group_commit.py), while granian's
own Rust threads read and write the sockets. nginx in front still reads every request in
full first, so a slow client holds nothing here. Each worker loads the app itself
(nothing is shared across the fork) and is prepared by datalook.lifecycle.worker_started,
as gunicorn's post_worker_init hook did: usage counters flushed at exit, snippets
highlighted, gc.freeze, the WAL checkpointer.

Signals to this process (the master): SIGTERM or SIGINT stops it gracefully (workers finish
the requests they hold, flush their counters, then exit; at most GRACEFUL_TIMEOUT_S);
SIGHUP restarts the workers one by one, each new one serving before its old one stops (a
graceful restart, for example after an upgrade). A worker that dies is started again.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
import sys
import time
from multiprocessing import util

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from granian.constants import Interfaces  # noqa: E402
from granian.log import LogLevels  # noqa: E402
from granian.server import Server  # noqa: E402

from datalook.config import ConfigError, gunicorn_settings  # noqa: E402

GRACEFUL_TIMEOUT_S = 20  # a worker still busy this long after SIGTERM is killed
RESPAWN_INTERVAL_S = 0.5  # SIGHUP: from a new worker's readiness to stopping its old one
READY_TIMEOUT_S = 120.0  # SIGHUP: the longest wait for a new worker to load the app

# The readiness flag of the worker being started: set here in the master just before the
# fork that starts it (granian forks right after _spawn_worker), so the worker inherits it.
_starting: list = [None]


def load_worker_app(target: str):
    """Import `target` (MODULE:NAME) in a fresh worker process and prepare it to serve."""
    from granian._internal import load_target  # noqa: PLC2701 - granian's own loader

    from datalook.lifecycle import worker_started

    app = load_target(target)
    worker_started(app)
    ready = _starting[0]
    if ready is not None:
        ready.set()  # the master may now stop the worker this one replaces
    # granian's workers are multiprocessing processes, which end with os._exit and so skip
    # atexit; run its handlers (the usage counters' and refused-request log's last flush)
    # from multiprocessing's own exit step instead.
    util.Finalize(None, atexit._run_exitfuncs, exitpriority=0)  # noqa: SLF001
    return app


class GracefulServer(Server):
    """granian's server, whose restarts (SIGHUP, or a worker that died) stop an old worker
    only once its replacement has loaded the app and serves.

    granian itself stops the old worker a fixed interval after starting the new one; a new
    worker that takes longer to import the app (seconds, on a busy machine) would leave no
    worker listening, and nginx would answer 503 meanwhile.
    """

    def _spawn_worker(self, idx, target, callback_loader):
        """granian's worker, with a readiness flag it inherits (see _starting)."""
        worker = super()._spawn_worker(idx, target, callback_loader)
        worker.ready = _starting[0] = multiprocessing.get_context("fork").Event()
        return worker

    def _respawn_workers(self, workers, spawn_target, target_loader, delay: float = 0):
        """Replace each worker in turn: start the new one, wait until it is ready (or gone),
        then stop the old one gracefully (killed after GRACEFUL_TIMEOUT_S)."""
        for idx in workers:
            self.respawned_wrks[idx] = time.monotonic()
            old = self.wrks.pop(idx)
            new = self._spawn_worker(idx=idx, target=spawn_target, callback_loader=target_loader)
            new.start()
            self.wrks.insert(idx, new)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not new.ready.wait(0.1) and new.is_alive() and time.monotonic() < deadline:
                pass
            time.sleep(delay)
            old.terminate()
            old.join(self.workers_kill_timeout)
            if old.is_alive():
                old.kill()
                old.join()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options: the app and the address (front.sh gives the address)."""
    parser = argparse.ArgumentParser(prog="server.py", description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="wsgi:app", help="MODULE:NAME of the WSGI app")
    parser.add_argument("--bind", required=True, help="HOST:PORT to listen on")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    options = parse_args(argv)
    try:
        settings = gunicorn_settings(os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"datalook: configuration error: {exc}\n")
        sys.exit(2)
    host, _, port = options.bind.rpartition(":")
    server = GracefulServer(
        options.app,
        address=host.strip("[]"),
        port=int(port),
        interface=Interfaces.WSGI,
        workers=settings["workers"],
        blocking_threads=settings["threads"],
        websockets=False,
        backlog=4096,
        log_level=LogLevels.warning,
        log_access=bool(os.environ.get("DATALOOK_ACCESS_LOG")),
        respawn_failed_workers=True,
        respawn_interval=RESPAWN_INTERVAL_S,
        workers_kill_timeout=GRACEFUL_TIMEOUT_S,
    )
    public = settings["host"]
    shown = "127.0.0.1" if public in ("0.0.0.0", "") else public  # noqa: S104 - display only

    @server.on_startup
    def tell_where() -> None:
        """Tell the person who typed `make run` where to go."""
        print(f"\n  DataLook is running: open http://{shown}:{settings['port']}\n", flush=True)

    server.serve(target_loader=load_worker_app)


if __name__ == "__main__":
    main()
