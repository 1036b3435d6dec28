# mlrelay developer commands. Each target installs what it needs: uv (when missing) and the
# locked workspace environment (.venv), so a fresh machine needs only Python, make and git.

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")

export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true

.PHONY: help sync demo test lint typecheck bench chaos clean

help:
	@echo "make demo   run the whole pipeline on local backends (DEMO_ARGS=--no-keep to stop the endpoint after)"
	@echo "make test   lint, type-check and run the test suite"
	@echo "make lint   ruff check and format check"
	@echo "make bench  benchmarks, side by side with the peers (BENCH_ARGS=--quick for a smoke run)"
	@echo "make chaos  the example pipeline through every adapter under kills, retries and API faults"

sync:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@$(UV) sync --all-packages --frozen --compile-bytecode --quiet

demo: sync
	$(UV) run --frozen mlrelay demo $(DEMO_ARGS)

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: sync
	$(UV) run --frozen mypy

# Two workers, one test file each at a time (--dist loadfile): a file's module fixtures (an
# emulator, a deployed endpoint) and its ordered rollout tests stay together; each worker starts
# its own session MLflow server. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: lint typecheck
	$(UV) run --frozen pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20 $(PYTEST_ARGS)

# Every benchmarks/p*.py, then benchmarks/results/<date>.json, the chart and the README table.
bench: sync
	$(UV) run --frozen python benchmarks/run.py $(BENCH_ARGS)

# 100 runs per adapter (~2 h on 2 cores); CHAOS_ARGS="--runs 20" for a ~25-minute one. A
# smoke version (a few runs per adapter) is part of make test.
CHAOS_ARGS ?= --runs 100 --parallel 3 --seed 1
chaos: sync
	$(UV) run --frozen python -m chaos.run $(CHAOS_ARGS) --json chaos-report.json

clean:
	rm -rf .mlrelay .pytest_cache .mypy_cache .ruff_cache
