# vsearch: two commands on a fresh machine with Python 3.11 ->  make demo  |  make test
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Telemetry off for every tool we run.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export PYTHONUNBUFFERED := 1

.PHONY: setup browser demo test test-fast bench serve lint format services-up services-down clean

setup: $(STAMP)

# Pinned install: every dependency comes from requirements.lock; the package itself is editable.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(BIN)/vsearch demo

test: setup browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25 tests

# Debian's Chromium for the web page's browser test (driven by Playwright); best effort.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

test-fast: setup
	$(BIN)/python -m pytest -q -m "unit" tests

bench: setup
	$(BIN)/python bench/world_bench.py
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/proposals_bench.py
	$(BIN)/python bench/index_bench.py --n 100000
	$(BIN)/python bench/build_bench.py --n 100000
	$(BIN)/python bench/service_bench.py --skip-1m
	$(BIN)/python -m bench.foreign_shop
	$(BIN)/python bench/fuzz.py
	$(BIN)/python bench/load.py

serve: setup
	$(BIN)/vsearch serve

# The service Bento (bentofile.yaml): code at the Bento's src root, deps from requirements.lock.
.PHONY: bento
bento: setup
	$(BIN)/bentoml build

services-up: setup
	$(BIN)/vsearch services up

services-down: setup
	$(BIN)/vsearch services down

lint: setup
	$(BIN)/ruff check src flows tests bench
	$(BIN)/ruff format --check src flows tests bench

format: setup
	$(BIN)/ruff format src flows tests bench
	$(BIN)/ruff check --fix src flows tests bench

clean:
	-$(BIN)/vsearch services down
	rm -rf .services reports indexes data/world data/incoming
