#!/usr/bin/env bash
# Upgrade the database, then serve DataLook: nginx in front on HOST:PORT (it reads every
# request in full, so slow clients cannot hold a worker), granian's workers behind it
# (server.py, through scripts/front.sh). This is what `make run` runs after set-up; the
# tests and the benchmark start the server through this same script.
#
# SIGTERM (or Ctrl-C) stops it gracefully; SIGHUP to this process restarts the workers one
# by one without refusing a request (server.py).
set -euo pipefail
cd "$(dirname "$0")/.."
# The settings this server runs with, written to the instance folder at each start, so that
# the `flask` command run later from a shell without this environment uses the same database
# and prints snippets with the served URL (datalook/config.py: SETTINGS_FILE, SHARED_SETTINGS;
# what the environment sets always wins). Mode 0600: DATABASE_URL may hold a password.
instance="${DATALOOK_INSTANCE_PATH:-instance}"
mkdir -p "$instance"
HOST="${HOST:-127.0.0.1}" PORT="${PORT:-5000}"
(
  umask 077
  {
    echo "# Written by scripts/serve.sh (make run) at each start: the settings the server runs with."
    echo "# The flask command reads these where its environment sets nothing; set the environment"
    echo "# of make run to change them, not this file."
    for name in DATABASE_URL PUBLIC_URL HOST PORT RATELIMIT_STORAGE_URI TRUSTED_PROXIES \
      SQLITE_SYNCHRONOUS SQLITE_BUSY_TIMEOUT_MS ANALYTICS_EXACT_EVENTS; do
      value="${!name:-}"
      case "$value" in *$'\n'*) continue ;; esac  # one line per setting
      if [ -n "$value" ]; then printf '%s=%s\n' "$name" "$value"; fi
    done
  } >"$instance/datalook.env.new"
  mv -f "$instance/datalook.env.new" "$instance/datalook.env"
)
export HOST PORT
.venv/bin/flask --app wsgi db upgrade >/dev/null
# The report fold (new events into the summaries, the sessions and the saved funnels) runs
# beside the server, in its own process at low priority, every ANALYTICS_FOLD_INTERVAL_S
# seconds (10): a report catches up what is pending before it is read, within
# REPORT_CATCHUP_BUDGET_MS, so reports stay current; this keeps that backlog small.
# `flask analytics supervise` starts it and starts it again whenever it exits (one log line
# with its exit status, then a back-off of 1 s doubling to 30 s). The supervisor stops when
# the server (this process, once it has become the server's master) exits, and the fold stops
# with the supervisor.
setpriv --pdeathsig TERM -- .venv/bin/flask --app wsgi analytics supervise -- \
  nice -n 10 .venv/bin/flask --app wsgi analytics fold --interval "${ANALYTICS_FOLD_INTERVAL_S:-10}" &
exec scripts/front.sh .venv/bin/python server.py --app wsgi:app
