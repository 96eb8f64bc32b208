"""WSGI entry point for the server (server.py, or gunicorn) and the `flask` command: the app,
and nothing else.

What a server worker does at start and exit lives in datalook/lifecycle.py, called from
server.py (or gunicorn.conf.py); importing this module has no other effect.
"""

import sys

from datalook.app import create_app
from datalook.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:  # a clear message for operators instead of a traceback
    sys.stderr.write(f"datalook: configuration error: {exc}\n")
    sys.exit(2)
