# gridmesh — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
DAYS   ?= 7
OUT    ?= results/demo

.PHONY: run study test services lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gridmesh needs Python >= 3.11; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(DEV): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

## run: the live platform on the built-in demo grid: control centre, dashboard, historian, field simulator
run: $(STAMP)
	$(VENV)/bin/gridmesh run demo $(RUN_ARGS)

## study: a one-week study of the built-in demo grid, with its HTML report
study: $(STAMP)
	$(VENV)/bin/gridmesh simulate demo --days $(DAYS) --out $(OUT)

## test: lint, type-check and the whole test suite (starts PostgreSQL and Mosquitto when they are down)
test: $(DEV) services lint typecheck unit

services:
	@bash scripts/ensure-services.sh

lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks

typecheck: $(DEV)
	$(VENV)/bin/mypy

unit: $(DEV)
	$(VENV)/bin/pytest -n auto -q

## bench: study throughput against pandapower and raw power-grid-model
bench: $(DEV)
	$(PY) benchmarks/bench_study.py

clean:
	rm -rf $(VENV) results gridmesh-data .pytest_cache .mypy_cache .ruff_cache
