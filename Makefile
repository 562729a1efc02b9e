# The two commands: `make run` (set up and serve the demo on real data) and `make test` (what CI runs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1

.PHONY: run test install db data model lint bench-ingest evaluate clean

# Reinstalls only when pyproject.toml changes, so a second `make run` skips it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

db: install
	$(BIN)/python -m app migrate

data: db
	$(BIN)/python -m app ingest --if-empty

model: data
	$(BIN)/python -m app features --if-missing
	$(BIN)/python -m app train --if-missing

run: model
	$(BIN)/python -m app serve

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench-ingest: install
	$(BIN)/python -m bench.ingest

# Fits every peer on the same split as the latest model; writes bench/results/quality.md.
evaluate: model
	$(BIN)/python -m app evaluate --peers

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
