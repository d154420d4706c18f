# Tamarack: `make run` runs the platform, `make test` runs the tests (see README.md).
GO        ?= go
PKGS      ?= ./...
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME  ?= 10s

.PHONY: run build ui images test test-short lint bench perf fuzz e2e infra-check clean

## run: build the web UI and the built-in sandbox images when needed, then run every service in one process on
## embedded defaults
run: ui images
	$(GO) run ./cmd/tamarack serve

## build: the binary at bin/tamarack (with the UI when it is built)
build: ui
	$(GO) build -o bin/tamarack ./cmd/tamarack

## ui: build frontend/dist when Node is present and the sources changed since the last build
ui:
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "npm not found: serving without the web UI (install Node.js 20.19+ to build it)"; \
	elif [ ! -f frontend/package.json ]; then \
		echo "no frontend yet"; \
	elif [ ! -f frontend/dist/index.html ] || [ -n "$$(find frontend/src frontend/index.html frontend/package.json -newer frontend/dist/index.html 2>/dev/null | head -n 1)" ]; then \
		cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build; \
	fi

## images: the built-in sandbox images (Debian packages -> OCI, cached; seed pushes them), when mmdebstrap is here
images:
	@if command -v mmdebstrap >/dev/null 2>&1; then \
		infra/images/build.sh >/dev/null; \
	else \
		echo "mmdebstrap not found: sandboxes cannot start until the built-in images are built (apt-get install mmdebstrap, then make images)"; \
	fi

## test: every Go test with the race detector (SQLite and embedded NATS; also Postgres and a NATS server
## when TAMARACK_TEST_POSTGRES and TAMARACK_TEST_NATS are set)
test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -count=1 $(PKGS)

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## bench: Go benchmarks (figures go to docs/performance.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## perf: every figure of docs/performance.md, each bench run three times: a Markdown table of medians, each run's
## value and the 1-minute load average around it (bench/perf; PERF_ARGS, e.g. -only testbed; the testbed bench
## needs root, runc and the built-in images)
perf:
	$(GO) run ./bench/perf $(PERF_ARGS)

## fuzz: each fuzz target (request decoders, money parsing) for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./platform/web/
	$(GO) test -run '^$$' -fuzz '^FuzzRequestDecoders$$' -fuzztime $(FUZZTIME) ./services/identity/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRoundTrip$$' -fuzztime $(FUZZTIME) ./platform/money/

## e2e: browser journeys in Debian's Chromium against a real `tamarack serve` (demo seed, stripe-mock); the UI and
## the binary are built once here, the harness starts and stops everything else
e2e: ui
	$(GO) build -o bin/tamarack ./cmd/tamarack
	cd frontend && TAMARACK_E2E_BIN=$(CURDIR)/bin/tamarack npm run e2e

## infra-check: validate the Kubernetes manifests, Tiltfile and Dockerfile without a cluster, then apply the
## manifests (dry run) to the test control plane when TAMARACK_TEST_KUBE names it (infra/kube/start.sh)
infra-check:
	bash infra/check.sh
	cd infra/check && $(GO) test -count=1 ./...

clean:
	rm -rf bin frontend/dist/assets frontend/dist/index.html
