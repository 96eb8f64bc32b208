# DataLook: `make run` serves the app, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean-venv system-deps-run system-deps-test system-deps-bench

# The Debian packages (scripts/system-deps.sh installs what is missing when run as root,
# else prints the one command to run).
system-deps-run:
	@scripts/system-deps.sh run

system-deps-test:
	@scripts/system-deps.sh test

system-deps-bench:
	@scripts/system-deps.sh bench

$(BIN)/python: | system-deps-run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamp files: reinstall only when a requirements file changes (a second `make run` is quick).
$(VENV)/.runtime-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# The dev set also installs the browser tests' npm tools (axe-core) exactly as locked.
$(VENV)/.dev-deps: requirements.txt requirements-dev.txt tests/e2e/package-lock.json | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	npm ci --prefix tests/e2e --no-audit --no-fund --silent
	touch $@

run: system-deps-run $(VENV)/.runtime-deps
	./scripts/serve.sh

# The suite runs on every core (pytest-xdist), each test file whole on one worker: every test
# makes its own servers, ports, databases and Redis keys. PYTEST_ARGS="-n 0" runs it serially.
PYTEST_ARGS ?= -n auto --dist loadfile
test: system-deps-test $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev-deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every scenario runs even when an earlier one misses its target; the exit status says
# whether all were met. `make bench BENCHES=run` runs one (names are modules of bench/);
# `summary` prints the ingestion figures of run and flood in one table.
BENCHES ?= run fold_cost slow_clients collect flood analytics summary
bench: system-deps-bench $(VENV)/.dev-deps
	@status=0; for name in $(BENCHES); do \
	  echo "== bench.$$name"; $(BIN)/python -m bench.$$name || status=1; \
	done; exit $$status

clean-venv:
	rm -rf $(VENV)
