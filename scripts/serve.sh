#!/usr/bin/env bash
# Upgrade the database, then serve DataLook: nginx in front on HOST:PORT (it reads every
# request in full, so slow clients cannot hold gunicorn's sync workers), gunicorn behind it
# (scripts/front.sh). This is what `make run` runs after set-up; the tests and the benchmark
# start the server through this same script.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/flask --app wsgi db upgrade >/dev/null
exec scripts/front.sh .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
