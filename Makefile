# stream-etl: every target sets itself up on a fresh machine (Python 3.11, no Docker).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CLI    := $(BIN)/stream-etl
DEMO   := .stream-etl/demo
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help install kinesalite demo test test-fast bench bench-peers chaos lint typecheck clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test,dev,bench]'
	$(BIN)/python -m compileall -q stream_etl connectors topologies  # cached even under PYTHONDONTWRITEBYTECODE
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

# `make test` runs on TEST_WORKERS pytest-xdist workers, each with its own broker, S3 and
# kinesalite (most e2e tests wait on group joins, leases and backoffs, so they overlap well on
# 2 cores: on a loaded 2-core machine 6 workers took 11 min, 4 took 14, serial 45-50);
# TEST_WORKERS=0 runs serially. PYTEST_ARGS picks tests or adds options, e.g.
# `make test PYTEST_ARGS="tests/e2e -k kinesis"`.
TEST_WORKERS ?= 6
PYTEST_ARGS  ?=

test: $(STAMP) $(KINESALITE) ## Run the whole suite on TEST_WORKERS=6 workers (~11 min; starts its own broker and S3)
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP) ## Run the tests that need no services
	$(BIN)/pytest -m "not services" $(PYTEST_ARGS)

bench: $(STAMP) $(KINESALITE) ## Benchmark 1M records Kafka -> Delta against a bare consumer; writes bench/results/latest.json
	$(BIN)/python -m bench.run --repeat 3

chaos: $(STAMP) ## Soak: >= 50 SIGKILLs at crash points and random moments, exactly-once checked; writes bench/results/chaos.json
	STREAM_ETL_CHAOS=1 $(BIN)/pytest tests/chaos -m chaos -q -s

bench-peers: $(STAMP) ## Quix Streams, Bytewax, Faust, Pathway on the same 1M records (own venvs in bench/.peers); writes bench/results/peers.json
	$(BIN)/python -m bench.peers

lint: $(STAMP) ## Ruff
	$(BIN)/ruff check stream_etl connectors topologies examples tests bench

typecheck: $(STAMP) ## Mypy (strict on the library)
	$(BIN)/mypy

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) .stream-etl .pytest_cache .mypy_cache .ruff_cache
