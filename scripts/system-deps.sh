#!/usr/bin/env bash
# The Debian packages DataLook needs, installed when missing: `make run` needs Python ≥ 3.11
# with venv and nginx; `make test` also needs what the tests drive (Chromium, the snippets'
# runtimes, redis-server, Node.js and npm); `make bench` needs wrk, the load generator.
# Shared by the Makefile and CI (.ci/run).
#
#   scripts/system-deps.sh run|test|bench
#
# As root, missing packages are installed with apt-get; otherwise the script stops and
# prints the one command to run. On a system without dpkg it checks the commands only.
set -euo pipefail

case "${1:-}" in
  run | test | bench) need="$1" ;;
  *) echo "usage: scripts/system-deps.sh run|test|bench" >&2; exit 2 ;;
esac

# package:command pairs (the command proves the package is there where dpkg is absent).
run_packages=(
  python3:python3
  python3-venv:
  nginx:nginx
)
test_packages=(
  chromium:chromium                        # the e2e tests drive the real browser
  curl:curl ruby:ruby php-cli:php php-curl: golang-go:go
  default-jdk-headless:javac elixir:elixir  # snippet runtimes
  mono-mcs:mcs libmono-system-net-http4.0-cil:    # C# (mcs + HttpClient)
  redis-server:redis-server                # private Redis instances for the fault tests
  nodejs:node npm:npm                      # TypeScript check of the Next.js snippet; axe-core
  rustc:rustc                              # the Rust snippet, compiled against stand-in crates
)
bench_packages=(
  wrk:wrk                                  # drives the servers in bench.run and bench.flood
)
wanted=("${run_packages[@]}")
[ "$need" = test ] && wanted+=("${test_packages[@]}")
[ "$need" = bench ] && wanted+=("${bench_packages[@]}")

missing=()
for pair in "${wanted[@]}"; do
  package="${pair%%:*}"
  command="${pair#*:}"
  if command -v dpkg-query >/dev/null 2>&1; then
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    # A tool installed another way (node from nodesource, rustc from rustup) counts too.
    if [ "$status" != "install ok installed" ] && { [ -z "$command" ] || ! command -v "$command" >/dev/null 2>&1; }; then
      missing+=("$package")
    fi
  elif [ -n "$command" ] && ! command -v "$command" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

python_ok="$(python3 -c 'import sys, venv; print(int(sys.version_info >= (3, 11)))' 2>/dev/null || echo 0)"
if [ "$python_ok" != 1 ] && [[ " ${missing[*]} " != *" python3 "* ]]; then
  echo "datalook: Python 3.11 or newer with venv is required (python3 is $(python3 --version 2>&1))" >&2
  exit 1
fi

[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "datalook: missing system packages (Debian names): ${missing[*]}; install them, then retry" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "datalook: missing system packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "datalook: installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
