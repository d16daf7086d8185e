# oncehook: `make run` serves it, `make test` passes the tests.
SHELL := /bin/bash
GO ?= go
# An execution count, not a duration: a duration races Go 1.26's fuzz
# coordinator at its deadline and fails with "context deadline exceeded"
# and no crasher (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 200000x

.PHONY: help run build test check fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: build ## start local Redis and Postgres if none is configured, migrate, serve
	@scripts/dev.sh

# The version and commit `oncehook version` and oncehook_build_info show.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
BUILDINFO := github.com/oncehook/oncehook/internal/buildinfo
LDFLAGS := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT)

build: ## build bin/oncehook, stamped with the version and commit
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/oncehook ./cmd/oncehook

test: check ## run every test against throwaway Redis and Postgres
	scripts/testenv.sh $(GO) test -race -count=1 -timeout 8m ./...

check: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

fuzz: ## run each fuzz target FUZZTIME times (default 200000x); FuzzHandler uses throwaway Postgres
	$(GO) test ./event -run '^$$' -fuzz '^FuzzParseEvent$$' -fuzztime $(FUZZTIME)
	$(GO) test ./receiver -run '^$$' -fuzz '^FuzzSignatureHeader$$' -fuzztime $(FUZZTIME)
	scripts/testenv.sh $(GO) test ./receiver -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/safetext -run '^$$' -fuzz '^FuzzClean$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/safetext -run '^$$' -fuzz '^FuzzPrintable$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/redact -run '^$$' -fuzz '^FuzzURL$$' -fuzztime $(FUZZTIME)

clean: ## stop the dev Redis and Postgres of `make run` and remove .data/ and bin/
	@scripts/dev.sh stop || true
	rm -rf bin .data

.PHONY: screenshots
screenshots: ## retake the console's screenshots in docs/console (the browser test, headless chromium)
	mkdir -p docs/console
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console scripts/testenv.sh $(GO) test -count=1 -run '^TestConsoleInARealBrowser$$' ./console/

.PHONY: bench bench-smoke

bench: ## benchmark the real receiver end to end, a 10M-event ledger included (~20 min), write bench/RESULTS.md (see scripts/bench.sh)
	GO=$(GO) scripts/bench.sh

bench-smoke: ## short correctness-only bench run for CI; fails on loss, double delivery or bad requests at the sink
	GO=$(GO) scripts/bench.sh smoke

.PHONY: chart
chart: ## lint, render and check the Helm chart in deploy/helm (part of make test too)
	$(GO) test -count=1 ./deploy/helm/
