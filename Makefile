# Merit: `make demo` sets everything up and runs the demo; `make test` runs every test.
# Every target is idempotent: stamps skip work that is already done.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOLC_VERSION := 0.8.37
SOLC := $(HOME)/.solcx/solc-v$(SOLC_VERSION)
FORGE := node_modules/.bin/forge
BROWNIE_VENV := .venv-brownie
export FOUNDRY_SOLC := $(SOLC)
export FOUNDRY_OFFLINE := true

.PHONY: all setup solc demo test lint format test-forge test-py bench artifacts brownie-check clean help

help:
	@echo "make demo           set up, then run 'merit demo' on the embedded chain and store"
	@echo "make test           set up, then lint (ruff, import-linter, forge fmt), run forge and pytest"
	@echo "make format         apply ruff's and forge's formatters"
	@echo "make bench          benchmarks; results in bench/results/*.json (BENCHES='gas storage' for some)"
	@echo "make artifacts      recompile contracts into backend/chain/artifacts"
	@echo "make brownie-check  compile and deploy with eth-brownie in its own virtualenv"

setup: $(VENV)/.installed node_modules/.installed solc

# torch first, pinned to the CPU build on this machine's disk, so nothing pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Always re-run: the solcjs wrapper in ~/.solcx points into this checkout's node_modules, and another
# checkout may have re-pointed it. It is quick when nothing changes.
solc: node_modules/.installed $(VENV)/.installed
	$(BIN)/python scripts/install_solc.py

demo: setup
	$(BIN)/merit demo

# eth-brownie's virtualenv too: tests/test_brownie.py compiles and deploys with it (about 40 s CPU).
test: setup $(BROWNIE_VENV)/.installed lint test-forge test-py

# ruff's lint and format check on the Python, the floors contract (import-linter, pyproject.toml), forge's
# formatter on the Solidity; `make format` fixes what the formatters can.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check .
	$(FORGE) fmt --check

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(FORGE) fmt

test-forge: setup
	$(FORGE) test

test-py: setup
	$(BIN)/python -m pytest --durations=25

# Reference implementations for side-by-side comparisons live in bench-only virtualenvs, never
# the product's: flwr and byzfl beside the same CPU torch; pyDVL pins numpy 1.x, so it gets its own.
BENCH_VENV := .venv-bench
PYDVL_VENV := .venv-pydvl
# byzfl requires torchvision, and no torchvision wheel imports beside the CPU torch 2.13.0 (and a
# plain install would pull a multi-GB CUDA torch), so byzfl goes in without dependencies; its
# aggregators never touch torchvision, and bench/aggregator.py stands in an inert module for it.
$(BENCH_VENV)/.installed:
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install -q flwr==1.42.0 scipy matplotlib seaborn "torch==2.13.0"
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps byzfl==0.0.11
	touch $@

$(PYDVL_VENV)/.installed:
	test -x $(PYDVL_VENV)/bin/python || $(PY) -m venv $(PYDVL_VENV)
	$(PYDVL_VENV)/bin/python -m pip install -q pyDVL==0.10.0
	touch $@

bench: setup $(BENCH_VENV)/.installed $(PYDVL_VENV)/.installed
	MERIT_BENCH_PYTHON=$(CURDIR)/$(BENCH_VENV)/bin/python MERIT_PYDVL_PYTHON=$(CURDIR)/$(PYDVL_VENV)/bin/python \
		$(BIN)/python -m bench $(BENCHES)

artifacts: setup
	$(BIN)/python -m backend.chain.compile --write

# eth-brownie pins 83 exact versions, so it lives in its own virtualenv (BROWNIE_VENV), never the product's.
$(BROWNIE_VENV)/.installed:
	test -x $(BROWNIE_VENV)/bin/python || $(PY) -m venv $(BROWNIE_VENV)
	$(BROWNIE_VENV)/bin/python -m pip install -q eth-brownie==1.22.2
	touch $@

brownie-check: setup $(BROWNIE_VENV)/.installed
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" BROWNIE_BIN=$(BROWNIE_VENV)/bin/brownie $(BIN)/python scripts/brownie_check.py

clean:
	rm -rf build .pytest_cache bench/results/*.tmp
