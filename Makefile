# The two commands: `make run` serves the API on the embedded default, `make test` runs the suite.
# Both create .venv on first use and (re)install the project when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench faults openapi clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

run: $(STAMP)
	$(BIN)/fuli up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check proto services tests loadtests
	$(BIN)/mypy

bench: $(VENV)/.bench
	$(BIN)/python loadtests/bench.py $(BENCH_ARGS)

faults: $(STAMP)
	$(BIN)/python loadtests/faults.py $(FAULTS_ARGS)

openapi: $(STAMP)
	$(BIN)/fuli openapi

clean:
	rm -rf $(VENV) .fuli .pytest_cache .mypy_cache .ruff_cache
