# vidcat: `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export VIDCAT_HOME ?= $(CURDIR)/.vidcat
export DAGSTER_HOME ?= $(VIDCAT_HOME)/dagster_home
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := 1

DEMO_VIDEOS ?= 1200
DEMO_SEED ?= 7
SHARED ?= $(CURDIR)/../shared

.PHONY: venv demo test test-fast up bench eval-text eval-text-dev lint clean

venv: $(STAMP)

# torch is installed alone first and pinned: a bare or ranged torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq torch==2.13.0
	$(BIN)/pip install -qq -e '.[dev]'
	@touch $(STAMP)

demo: venv
	$(BIN)/vidcat demo --videos $(DEMO_VIDEOS) --seed $(DEMO_SEED)

# Two workers: much of the slow suite waits on processes it started (daemon, dagster dev, Ray, Postgres).
# Each worker builds its own trained catalog (the `pipeline` fixture); Ray tests take turns (tests/conftest.py).
test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

up: venv
	$(BIN)/vidcat up

bench: venv
	$(BIN)/python -m bench

eval-text: venv
	$(BIN)/vidcat eval-text --data $(SHARED)/data/youtube_trending --train GB,US,CA,FR --test DE,MX,BR,IN --json

# The development split the text model's defaults are chosen on (docs/text-model.md, section 5): FR is
# scored, never the test countries of eval-text.
eval-text-dev: venv
	$(BIN)/vidcat eval-text --data $(SHARED)/data/youtube_trending --train GB,US,CA --test FR --budget 1.0,0.5,0.25 --json

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VIDCAT_HOME)
