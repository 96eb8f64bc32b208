#!/usr/bin/env bash
# Upgrade the database, then serve DataLook with gunicorn (what `make run` runs after set-up).
# Tests and the benchmark start the server through this same script.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/flask --app wsgi db upgrade >/dev/null
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
