"""WSGI entry point for gunicorn and the `flask` command."""

import sys

from datalook import snippets, usage
from datalook.app import create_app
from datalook.config import ConfigError
from datalook.extensions import db

try:
    app = create_app()
except ConfigError as exc:  # a clear message for operators instead of a traceback
    sys.stderr.write(f"datalook: configuration error: {exc}\n")
    sys.exit(2)

with app.app_context():
    # Counters batched in memory are written when the process exits (SIGTERM included).
    usage.install_exit_flush(app, db.engine)

if app.config["PUBLIC_URL"]:
    # Highlight the 12 snippets now, so the first show-once page does not pay for it.
    snippets.render(app.config["PUBLIC_URL"] + "/event", None)
