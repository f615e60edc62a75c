# The two commands: `make run` (embedded default) and `make test` (real PostgreSQL + Redis).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# The first interpreter that is Python 3.12 or newer (pyenv's shims honour .python-version).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

# Defaults for the targets run on their own (`make test-unit` ...): the local servers.
# `make test`, `make up` and `make bench` go through bin/services, which picks the servers
# (named, local, or started from wheels) and passes DATABASE_URL / REDIS_URL down.
TEST_DATABASE_URL ?= $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/livemart)
TEST_REDIS_URL ?= $(or $(REDIS_URL),redis://127.0.0.1:6379/0)
SERVICES := $(BIN)/python bin/services exec

.PHONY: help run test test-unit test-browser up bench lint format clean

help:
	@echo "make run    serve the demo at http://127.0.0.1:8000 (SQLite, in-process realtime and tasks)"
	@echo "make test   run the whole suite against PostgreSQL and Redis (DATABASE_URL / REDIS_URL)"
	@echo "make up     run the full stack: web, worker, beat, media (PostgreSQL + Redis + nginx-rtmp)"
	@echo "make bench  run every benchmark in bench/"
	@echo "make lint   ruff check + ruff format --check"

$(VENV)/.created:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required and was not found on PATH (try: pyenv install 3.12)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.runtime: requirements.txt $(VENV)/.created
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

# --- the embedded default: one process, SQLite, in-memory channel layer, eager tasks ----
run: $(VENV)/.runtime
	@mkdir -p var/staticfiles
	@env -u DATABASE_URL -u REDIS_URL QUIET_EMBEDDED=1 $(BIN)/python manage.py migrate --noinput -v0
	@env -u DATABASE_URL -u REDIS_URL QUIET_EMBEDDED=1 $(BIN)/python manage.py seed_demo
	@echo "Serving on http://127.0.0.1:8000  (Ctrl+C to stop)"
	@env -u DATABASE_URL -u REDIS_URL $(BIN)/uvicorn config.asgi:application --host 127.0.0.1 --port 8000 --ws-per-message-deflate false --log-level warning

# --- real services: bin/services finds, starts or installs them (README, "make test") ---
# Unit and websocket tests run in one pytest process, browser tests in another: sync
# Playwright and pytest-asyncio's loops do not share a process well.
test: $(VENV)/.dev
	@$(SERVICES) -- $(MAKE) --no-print-directory test-unit test-browser

test-unit: $(VENV)/.dev
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(BIN)/pytest -m "not browser" $(PYTEST_ARGS)

test-browser: $(VENV)/.dev
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/pytest -m browser $(PYTEST_ARGS)

# The wheel servers are dev requirements, so the full stack installs them too.
up: $(VENV)/.dev
	@mkdir -p var/staticfiles
	@$(SERVICES) --need postgres,redis,ffmpeg,nginx-rtmp -- bin/up

bench: $(VENV)/.dev
	@$(SERVICES) -- bash -c 'set -e; for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script; done'

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache
