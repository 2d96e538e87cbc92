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

.PHONY: install run test soak lint proto proto-check clean bench go go-debs proto-go console-debs

install: $(STAMP) $(NODE_BUILD) $(BUF) go console-debs

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

# The Go client's tests, pytest (which plays the conformance scenarios through the Python,
# TypeScript and Go clients and grpcurl), then the TypeScript client's own tests.
test: $(STAMP) $(NODE_BUILD) $(BUF) go console-debs
	# -count=1: the tests run the daemon, which go test's cache does not see change.
	$(GO) test -count=1 $(GO_PACKAGES)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	cd $(NODE_CLIENT) && npm test --silent

# The long forms of the tests marked `soak` (crash storms with many kills, more property-based
# examples, ten minutes of load), with their figures printed (-s).
soak: $(STAMP) $(NODE_BUILD) $(BUF) go
	MODELCONFIG_SOAK=1 MODELCONFIG_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -m soak -s $(PYTEST_ARGS)

# Regenerates the Python stubs (typed) from protos/ into the client package's source root, so
# the generated imports (`from modelconfig.v1 import ...`) are right as generated; the
# TypeScript schemas into clients/node/src/gen (clients/node/buf.gen.yaml); and the Go stubs
# (proto-go).
proto: $(STAMP) $(BUF) $(NODE_STAMP) proto-go
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iprotos \
	  --python_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) \
	  --mypy_out=$(PROTO_OUT) --mypy_grpc_out=$(PROTO_OUT) $(PROTOS)
	cd $(NODE_CLIENT) && $(CURDIR)/$(BUF) generate

# -- Go (clients/go) ---------------------------------------------------------------------------
# Built offline from Debian's packages in GOPATH mode: there is no module proxy to fill a go.mod,
# and Debian installs the sources under /usr/share/gocode. The repository is linked into
# build/go/src as `modelconfig`, so a directory's import path is its path in the repository
# (clients/go/modelconfig is `modelconfig/clients/go/modelconfig`). golang-github-golang-protobuf
# must be 1-5: with the 1-3 package that golang-google-grpc-dev may pull in, stubs from
# protoc-gen-go 1.28 panic at run time; naming 1-5 makes apt replace 1-3.
GO_DEBS := golang-go golang-google-grpc-dev golang-google-protobuf-dev \
  golang-github-golang-protobuf-1-5-dev golang-google-genproto-dev \
  protobuf-compiler protoc-gen-go protoc-gen-go-grpc
GO_BUILD := build/go
GO_IMPORT := modelconfig/clients/go
GO_PACKAGES := $(GO_IMPORT)/modelconfig $(GO_IMPORT)/modelconfig/v1 $(GO_IMPORT)/cmd/conformance
GO := GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$(CURDIR)/$(GO_BUILD):/usr/share/gocode" \
  GOCACHE="$(CURDIR)/$(GO_BUILD)/cache" MODELCONFIGD="$(CURDIR)/$(BIN)/modelconfigd" go
GO_PROTO_OUT := clients/go
GO_PROTO_MAP := $(subst $(eval) ,,$(foreach p,$(PROTOS),,M$(p:protos/%=%)=$(GO_IMPORT)/modelconfig/v1;modelconfigv1))
CONFORMANCE_GO := $(GO_BUILD)/bin/modelconfig-conformance

# Installs whichever of the Debian packages $(1) is missing (needs root).
define install_debs
@missing=$$(for p in $(1); do \
  dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; \
done); \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:" $$missing; \
  DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing || \
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing); \
fi
endef

# Installs whichever of GO_DEBS is missing (needs root), then builds the conformance runner.
go: go-debs $(GO_BUILD)/src/modelconfig
	$(GO) build -o $(CONFORMANCE_GO) $(GO_IMPORT)/cmd/conformance

go-debs:
	$(call install_debs,$(GO_DEBS))

$(GO_BUILD)/src/modelconfig:
	mkdir -p $(GO_BUILD)/src
	ln -sfn ../../.. $@

# Regenerates the Go stubs with Debian's protoc, protoc-gen-go and protoc-gen-go-grpc (a test
# fails when they are stale). The protos name no go_package: M options give the import path.
proto-go: go-debs
	mkdir -p $(GO_PROTO_OUT)
	protoc -Iprotos \
	  --go_out=$(GO_PROTO_OUT) "--go_opt=paths=source_relative$(GO_PROTO_MAP)" \
	  --go-grpc_out=$(GO_PROTO_OUT) "--go-grpc_opt=paths=source_relative$(GO_PROTO_MAP)" \
	  $(PROTOS:protos/%=%)

# Debian's chromium, the headless browser tests/e2e/test_console.py drives with Playwright
# (launched from /usr/bin/chromium: `playwright install` would download a browser build, and
# there is no CDN here). Installed when missing, as go-debs does (needs root).
CONSOLE_DEBS := chromium fonts-dejavu-core

console-debs:
	$(call install_debs,$(CONSOLE_DEBS))

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf@$(BUF_VERSION)

# The proto is a product: formatted, linted, and never broken against main's last commit
# (the FILE rules: what generated code in any language relies on).
lint: $(STAMP) $(BUF) $(NODE_STAMP) go
	$(BIN)/ruff check daemon clients tests bench
	$(BIN)/python -m mypy --config-file clients/python/pyproject.toml clients/python/src/modelconfig
	cd protos && ../$(BUF) format --diff --exit-code --exclude-path google
	cd protos && ../$(BUF) lint
	$(BUF) breaking protos --against "$$(git rev-parse --git-common-dir)#branch=main,subdir=protos"
	cd $(NODE_CLIENT) && npm run --silent typecheck
	@unformatted=$$(gofmt -l clients/go); test -z "$$unformatted" || \
	  (echo "gofmt would change: $$unformatted"; exit 1)
	$(GO) vet $(GO_PACKAGES)

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
	rm -rf $(VENV) var .pytest_cache $(NODE_CLIENT)/node_modules $(NODE_CLIENT)/dist $(GO_BUILD)
