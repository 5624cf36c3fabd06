# Atelier: `make demo` sets up and runs the fleet with a live desktop;
# `make test` runs every test. Both install what they need (Debian packages
# via apt-get, Go modules) and need root on a fresh Debian 12 machine.
export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X atelier/internal/version.Version=$(VERSION)

.PHONY: all deps build test test-short bench bench-density fuzz demo image vet clean

all: build

deps:
	@./scripts/install-deps.sh
	@$(GO) mod download

CC       ?= cc
FRAMECLOCK_CFLAGS := -shared -fPIC -O2 -Wall -Wextra -Werror

build: $(BIN)/atelier-frameclock.so
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# Preloaded into sway by the agent beside which it lies (desktop/frameclock).
$(BIN)/atelier-frameclock.so: desktop/frameclock/frameclock.c
	@mkdir -p $(BIN)
	$(CC) $(FRAMECLOCK_CFLAGS) -o $@ $< -ldl

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting' >&2; exit 1; }
	$(GO) vet ./...

# Every test: unit, real desktops, the Docker Engine, headless Chromium.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

# Unit tests only: seconds, no desktop.
test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks against real desktops; prints p50/p95/p99 per verb.
BENCHTIME ?= 20x
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m ./... | tee bench.out
	@echo; echo 'percentiles (p50/p95/p99, ms) per benchmark:'; grep -E 'p50' bench.out || true

# N idle desktops on the local runtime: create → ready, a round-robin
# screenshot sweep (p50/p99), PSS per desktop by program, idle CPU.
N ?= 10
bench-density: build
	ATELIER_DENSITY_N=$(N) $(GO) test -run '^$$' -bench '^BenchmarkDensity$$' -benchtime 1x -timeout 60m -v ./internal/fleettest/

# A short fuzzing pass over every parser (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

demo: deps build
	./scripts/demo.sh

# The desktop image for the docker runtime, built from Debian packages (a
# debootstrap base when no registry is reachable); a no-op when current.
image: deps build
	./scripts/build-image.sh $(VERSION)

clean:
	rm -rf $(BIN)
