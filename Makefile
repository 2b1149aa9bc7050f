# stream-etl: every target sets itself up on a fresh machine (Python 3.11, no Docker).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CLI    := $(BIN)/stream-etl
DEMO   := .stream-etl/demo
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help install kinesalite demo test test-fast bench bench-peers lint typecheck clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test,dev,bench]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install stream-etl with every extra

# kinesalite (a local Kinesis on Node.js) for the Kinesis tests, bench and dev; pinned in tools/kinesalite.
KINESALITE := tools/kinesalite/node_modules/.installed
$(KINESALITE): tools/kinesalite/package.json tools/kinesalite/package-lock.json
	cd tools/kinesalite && npm ci --no-audit --no-fund --loglevel=error
	@touch $(KINESALITE)

kinesalite: $(KINESALITE) ## Install kinesalite (npm) for the Kinesis tests

demo: $(STAMP) ## Start the local stack, stream sample orders into Delta, print the table, stop
	@rm -rf $(DEMO)
	@export STREAM_ETL_DEV_DIR=$(DEMO); status=0; \
	$(CLI) dev up --kafka-port 19092 --s3-port 18333 > /dev/null && \
	$(CLI) produce orders --count 20000 --partitions 4 --bad-every 1000 && \
	$(CLI) run topologies/orders.py --until-caught-up && \
	$(CLI) table show s3://lake/orders --limit 5 && \
	$(CLI) table show s3://lake/orders_dead_letters --limit 3 || status=$$?; \
	$(CLI) dev down; exit $$status

test: $(STAMP) $(KINESALITE) ## Run the whole test suite (starts its own broker and S3)
	$(BIN)/pytest

test-fast: $(STAMP) ## Run the tests that need no services
	$(BIN)/pytest -m "not services"

bench: $(STAMP) $(KINESALITE) ## Benchmark 1M records Kafka -> Delta against a bare consumer; writes bench/results/latest.json
	$(BIN)/python -m bench.run --repeat 3

bench-peers: $(STAMP) ## Quix Streams, Bytewax, Faust, Pathway on the same 1M records (own venvs in bench/.peers); writes bench/results/peers.json
	$(BIN)/python -m bench.peers

lint: $(STAMP) ## Ruff
	$(BIN)/ruff check stream_etl connectors topologies examples tests bench

typecheck: $(STAMP) ## Mypy (strict on the library)
	$(BIN)/mypy

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) .stream-etl .pytest_cache .mypy_cache .ruff_cache
