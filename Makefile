# Every target sets itself up: a fresh clone needs nothing but python3 (3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Two stamps per pyproject.toml checksum: the service's dependencies only (serve), or those
# plus the test extras (test, lint). The test stamp also makes the service stamp, so `make
# serve` after `make test` installs nothing; `make test` after `make serve` adds the extras.
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
STAMP := $(VENV)/.installed-test-$(SUM)
PG_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?=

.PHONY: serve test test-sqlite test-postgres lint bench browser wrk valgrind clean

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "installing merchant-backend into $(VENV) (the service's dependencies only)"
	@$(BIN)/python -m pip install -q -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "installing merchant-backend with its test tools into $(VENV)"
	@$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@ $(RUN_STAMP)

# `serve` migrates the database itself, then prints where to go next.
serve: $(RUN_STAMP)
	@$(BIN)/merchant-backend serve

# Debian's Chromium for the browser tests (Playwright's own download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The whole suite on SQLite, then on PostgreSQL. Without a reachable PostgreSQL the second run
# is skipped with a clear message, except under CI=true, where that is a failure.
test: $(STAMP) browser lint test-sqlite test-postgres

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-sqlite: $(STAMP)
	@mkdir -p .pytest-tmp
	$(BIN)/pytest --db sqlite --basetemp "$(CURDIR)/.pytest-tmp/sqlite" $(PYTEST_ARGS)

test-postgres: $(STAMP)
	@mkdir -p .pytest-tmp
	@if $(BIN)/python -m tests.pg_reachable "$(PG_ADMIN_URL)"; then \
	  $(BIN)/pytest --db postgresql --pg-admin-url "$(PG_ADMIN_URL)" \
	    --basetemp "$(CURDIR)/.pytest-tmp/postgresql" $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
	  echo "FAILED: PostgreSQL at $(PG_ADMIN_URL) is not reachable, and CI must not skip it"; exit 1; \
	else \
	  echo "SKIPPED: the PostgreSQL run (no server at $(PG_ADMIN_URL)); SQLite run above only"; \
	fi

# wrk drives the ingest benchmark; Debian's package, like chromium above.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing Debian's wrk for the benchmark"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }

# valgrind counts the instructions of the in-process cases (bench/instructions.py).
valgrind:
	@command -v valgrind >/dev/null 2>&1 || { \
	  echo "installing Debian's valgrind for the benchmark"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq valgrind >/dev/null; }

# A benchmark, not a test: prints figures and ratios, never fails on a time. BENCH_ARGS=--help
bench: $(STAMP) wrk valgrind
	PG_ADMIN_URL="$(PG_ADMIN_URL)" $(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts

# The web pages' German catalogue: extract every marked message (babel.cfg) and add the new ones
# to src/merchant_backend/locale/de/LC_MESSAGES/messages.po, to be translated there by hand.
# Nothing is compiled: the service reads the .po at start-up (see merchant_backend/i18n.py).
messages: $(STAMP)
	$(BIN)/pybabel --quiet extract -F babel.cfg -k _t --no-location --sort-output -o .messages.pot .
	$(BIN)/pybabel --quiet update -i .messages.pot -d src/merchant_backend/locale -D messages \
	  --ignore-obsolete --no-fuzzy-matching -w 100
	rm -f .messages.pot
