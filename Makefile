# hpiagent build targets. `make test` is the command CI runs (.ci/run).
GO        ?= go
BIN       := bin
FUZZTIME  ?= 30s

.PHONY: all build test test-short peers bench fuzz lint clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Installs the real peers (ipmi_sim, ipmitool, FreeIPMI) when missing, then
# runs every test, with the race detector; fuzz corpora run as plain tests.
test: peers
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

# Unit tests only: tests that need a real peer skip themselves.
test-short:
	$(GO) test -short -count=1 ./...

peers:
	scripts/install-peers.sh

# Benchmarks against the peer tools on the same simulated shelf; writes
# bench/out/ and prints the ratios recorded in bench/RESULTS.md.
bench: peers build
	bench/run.sh

# Runs every fuzz target for FUZZTIME each.
fuzz:
	scripts/fuzz-all.sh $(FUZZTIME)

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	$(GO) vet ./...

clean:
	rm -rf $(BIN) bench/out
