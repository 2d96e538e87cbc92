# modelconfig: `make run` serves the daemon, `make test` runs every test; both bootstrap .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF := $(VENV)/buf/node_modules/.bin/buf
PROTO_OUT := clients/python/src
PROTOS := $(wildcard protos/modelconfig/v1/*.proto)

.PHONY: install run test lint proto proto-check clean bench

install: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e 'clients/python[openfeature,cli]' -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/modelconfigd

test: $(STAMP) $(BUF)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Regenerates the Python stubs (typed) from protos/ into the client package's source root, so
# the generated imports (`from modelconfig.v1 import ...`) are right as generated.
proto: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
	  --mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTOS)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf@$(BUF_VERSION)

# The proto is a product: formatted, linted, and never broken against main's last commit
# (the FILE rules: what generated code in any language relies on).
lint: $(STAMP) $(BUF)
	$(BIN)/ruff check daemon clients tests bench
	$(BIN)/python -m mypy --config-file clients/python/pyproject.toml clients/python/src/modelconfig
	cd protos && ../$(BUF) format --diff --exit-code
	cd protos && ../$(BUF) lint
	$(BUF) breaking protos --against "$$(git rev-parse --git-common-dir)#branch=main,subdir=protos"

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
	rm -rf $(VENV) var .pytest_cache
