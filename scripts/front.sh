#!/usr/bin/env bash
# Run a server command behind nginx (deploy/nginx.conf): nginx listens on HOST:PORT and
# reads every request in full before passing it on; the server gets a private port on
# 127.0.0.1. Used by serve.sh (so by `make run`, the tests and the benchmark).
#
#   scripts/front.sh .venv/bin/python server.py --app wsgi:app
#   scripts/front.sh .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
#
# nginx runs as a child of the server's master (this script execs the server) and is told to
# stop when that master exits, so stopping the server stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

nginx_bin="$(command -v nginx || true)"
[ -n "$nginx_bin" ] || nginx_bin=/usr/sbin/nginx
if [ ! -x "$nginx_bin" ]; then
  echo "datalook: nginx is required in front of the server (Debian: apt-get install nginx)" >&2
  exit 2
fi

host="${HOST:-127.0.0.1}"
port="${PORT:-5000}"
instance="${DATALOOK_INSTANCE_PATH:-instance}"
front_dir="$(mkdir -p "$instance" && cd "$instance" && pwd)/front-$port"
mkdir -p "$front_dir/tmp"
rm -f "$front_dir/nginx.pid"

# A free port for the server, chosen by the kernel.
upstream_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

case "$host" in
  *:*) listen="[$host]:$port" ;;  # IPv6
  *) listen="$host:$port" ;;
esac
user_line=""
# As root, nginx would switch its worker to "nobody"; keep the invoking user.
[ "$(id -u)" = 0 ] && user_line="user root;"

sed -e "s|@FRONT_DIR@|$front_dir|g" \
    -e "s|@LISTEN@|$listen|g" \
    -e "s|@UPSTREAM_PORT@|$upstream_port|g" \
    -e "s|@USER_LINE@|$user_line|g" \
    deploy/nginx.conf >"$front_dir/nginx.conf"

# nginx in the foreground, as a child of this process (soon the server's master); it gets
# SIGTERM when that process exits.
setpriv --pdeathsig TERM -- "$nginx_bin" -p "$front_dir" -e stderr -c "$front_dir/nginx.conf" \
  -g "daemon off;" &
nginx_pid=$!
# nginx writes its pid file once it listens; it exits (after a few retries) when it cannot,
# for example when the port is in use. Stop here then, rather than serve nothing on PORT.
for _ in $(seq 100); do
  [ -s "$front_dir/nginx.pid" ] && break
  if ! kill -0 "$nginx_pid" 2>/dev/null; then
    echo "datalook: nginx could not start on $listen (see above)" >&2
    exit 1
  fi
  sleep 0.05
done

# The app trusts one more proxy than those in front of nginx: nginx itself.
export TRUSTED_PROXIES="$(( ${TRUSTED_PROXIES:-0} + 1 ))"
exec "$@" --bind "127.0.0.1:$upstream_port"
