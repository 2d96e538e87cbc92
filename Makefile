# modelconfig: `make run` serves the daemon, `make test` runs every test; both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := $(VENV)/buf/node_modules/.bin/buf
PROTO_OUT := clients/python/src
PROTOS := $(wildcard protos/modelconfig/v1/*.proto)
NODE_CLIENT := clients/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed
NODE_BUILD := $(NODE_CLIENT)/dist/index.js
NODE_SOURCES := $(shell find $(NODE_CLIENT)/src -name '*.ts') $(NODE_CLIENT)/tsconfig.json

.PHONY: install run test lint proto proto-check clean bench

install: $(STAMP) $(NODE_BUILD) $(BUF)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e 'clients/python[openfeature,cli]' -e '.[dev]'
	touch $@

# The TypeScript client (clients/node): its pinned npm dependencies from the committed lock,
# then its build (dist/), which its tests and the conformance runner import.
$(NODE_STAMP): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --silent --no-audit --no-fund
	touch $@

$(NODE_BUILD): $(NODE_STAMP) $(NODE_SOURCES)
	cd $(NODE_CLIENT) && node_modules/.bin/tsc -p tsconfig.json
	touch $@

run: $(STAMP)
	$(BIN)/modelconfigd

# pytest (which plays the conformance scenarios through the TypeScript client too), then the
# TypeScript client's own tests with node's test runner.
test: $(STAMP) $(NODE_BUILD) $(BUF)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	cd $(NODE_CLIENT) && npm test --silent

# Regenerates the Python stubs (typed) from protos/ into the client package's source root, so
# the generated imports (`from modelconfig.v1 import ...`) are right as generated; and the
# TypeScript schemas into clients/node/src/gen (clients/node/buf.gen.yaml).
proto: $(STAMP) $(BUF) $(NODE_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
	  --mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTOS)
	cd $(NODE_CLIENT) && $(CURDIR)/$(BUF) generate

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf@$(BUF_VERSION)

# The proto is a product: formatted, linted, and never broken against main's last commit
# (the FILE rules: what generated code in any language relies on).
lint: $(STAMP) $(BUF) $(NODE_STAMP)
	$(BIN)/ruff check daemon clients tests bench
	$(BIN)/python -m mypy --config-file clients/python/pyproject.toml clients/python/src/modelconfig
	cd protos && ../$(BUF) format --diff --exit-code
	cd protos && ../$(BUF) lint
	$(BUF) breaking protos --against "$$(git rev-parse --git-common-dir)#branch=main,subdir=protos"
	cd $(NODE_CLIENT) && npm run --silent typecheck

# A benchmark, not a test (about 7 minutes): ResolveForAccount against a zero-work grpcio
# server at 1,000 and 1,000,000 accounts, driven by h2load; writes bench/results/. Installs the
# bench extra (matplotlib) and, when missing, Debian's nghttp2-client (h2load; needs root).
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--sizes 1000 --rounds 2".
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(BENCH_STAMP)
	command -v h2load >/dev/null || apt-get install -y nghttp2-client || \
	  (apt-get update && apt-get install -y nghttp2-client)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache $(NODE_CLIENT)/node_modules $(NODE_CLIENT)/dist
