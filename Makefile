# The one entry point: make run, make test, make lint, make bench,
# make fuzz, make demo. CI runs `make test` (.ci/run).

GO ?= go
# staticcheck release that supports Go 1.26.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Whole-suite limit for go test; the suite takes a few minutes on 2 cores.
# -p 1: one package at a time. Several packages start daemons, namespaces
# and DNS servers with deadlines; run side by side under -race on 2 cores
# they starved each other (three timing failures in one clean-checkout run,
# each passing alone), at a cost of about a minute of wall time.
TEST_TIMEOUT ?= 20m
HOME_DIR ?= .pcnode

.PHONY: all build run test lint bench fuzz soak demo clean

all: build

build:
	$(GO) build -o bin/pcnode ./cmd/pcnode

# A local-profile node in ./.pcnode, in the foreground. From another shell:
#   PCNODE_HOME=.pcnode bin/pcnode status
run: build
	@if [ ! -f $(HOME_DIR)/config.toml ]; then bin/pcnode --home $(HOME_DIR) init --profile local; fi
	@echo "make run: home $(HOME_DIR); from another shell: PCNODE_HOME=$(HOME_DIR) bin/pcnode status"
	bin/pcnode --home $(HOME_DIR) daemon

test:
	scripts/install-test-deps.sh
	$(GO) test -race -p 1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	$(GO) run ./integration/bench -out docs/BENCHMARKS.md

fuzz:
	scripts/fuzz.sh

# Three daemons, random folder edits and partitions for $(SOAK), then
# convergence and flat goroutines, fds and memory (docs/RELIABILITY.md).
# make test runs the same test for 30 s.
SOAK ?= 30m
soak:
	PCNODE_SOAK=$(SOAK) $(GO) test -run '^TestSoak$$' -count 1 -v -timeout 2h ./integration

# A home server, a laptop and a friend on loopback: pair, sync a folder,
# share a file the friend gets from the server while the laptop sleeps.
demo: build
	scripts/demo.sh bin/pcnode

clean:
	rm -rf bin
