"""What a server worker does when it starts and when it exits, in one place.

server.py calls `worker_started` in every worker once it has loaded the app (each worker
loads its own: nothing is shared across a fork), as gunicorn.conf.py's post_worker_init hook
does for gunicorn.
Importing wsgi.py does none of this.
"""

from __future__ import annotations

import gc

from flask import Flask

from .analytics.store.read import prepare_reads
from .browser import bot_counts
from .extensions import db
from .ingest.usage import counter_for, flush_at_exit
from .snippets import render as snippets
from .sql import wal_checkpoints


def freeze_loaded_objects() -> None:
    """Take a long-running process's loaded objects (the app, its libraries) out of the
    collector's regular passes: without this every full collection walks Flask, SQLAlchemy,
    Pygments and the analytics' libraries again (in a worker, bench/README.md has the gain;
    in the fold process, a full collection walked 168k objects in 82-87 ms)."""
    gc.collect()
    gc.freeze()


def worker_started(app: object) -> None:
    """Prepare a freshly booted worker of `app` (DataLook, or the benchmark's bare app)."""
    if isinstance(app, Flask) and app.config.get("SQLALCHEMY_DATABASE_URI"):
        with app.app_context():
            # Usage counters batched in memory are written when the worker exits.
            flush_at_exit(counter_for(app.extensions), db.engine)
            bot_counts.flush_at_exit(bot_counts.bot_counter_for(app.extensions), db.engine)
            # What every first report of a worker would otherwise pay (the reports' DuckDB
            # database, the list of time zones a range is checked against), paid at boot.
            prepare_reads()
        if app.config.get("PUBLIC_URL"):
            # Highlight the 12 snippets now, so the first show-once page does not pay for it.
            snippets.render(app.config["PUBLIC_URL"] + "/event", None)
    freeze_loaded_objects()
    if isinstance(app, Flask):
        # One worker per host wins the lead and copies the SQLite WAL into the database on
        # its own thread, so that no writer waits for a checkpoint.
        wal_checkpoints.start_for(app)
        # The report fold is not a worker's job: scripts/serve.sh runs `flask analytics fold`
        # (analytics.worker) beside the server at low priority, so that it never takes CPU
        # from the workers.
