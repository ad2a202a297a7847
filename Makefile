# Sandboxd. `make help` lists the targets.
SHELL := /bin/bash
DATA_DIR   ?= /var/lib/sandboxd
IMAGES_DIR ?= $(DATA_DIR)/images
LISTEN     ?= 127.0.0.1:8787
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO         ?= go
LDFLAGS    := -s -w -X github.com/sandboxd/sandboxd/internal/agentapi.Version=$(VERSION)
# What the daemon, the image build and the tests need: command:Debian-package
# (a command already on PATH, from wherever, is enough).
DEPS       := runc:runc mkfs.ext4:e2fsprogs mmdebstrap:mmdebstrap npm:npm busybox:busybox-static git:git setpriv:util-linux unshare:util-linux update-ca-certificates:ca-certificates
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME  ?= 100x

.PHONY: help deps build image run test test-short lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

deps: ## install the Debian packages that are missing (needs root)
	@missing=$$(for d in $(DEPS); do command -v $${d%%:*} >/dev/null 2>&1 || echo $${d#*:}; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: ## build sandboxd, sandbox-agent and the sandbox CLI into bin/ (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/sandboxd ./cmd/sandbox-agent ./cmd/sandbox

image: deps ## build the default image into IMAGES_DIR once (cached by recipe hash)
	image/build.sh --images-dir $(IMAGES_DIR)

run: deps build image ## build everything and run sandboxd on LISTEN, printing the API token
	./bin/sandboxd --listen $(LISTEN) --data-dir $(DATA_DIR) --images-dir $(IMAGES_DIR)

test: deps build image ## the whole test suite, every tier, with the race detector
	SANDBOXD_TEST_IMAGE=$(IMAGES_DIR)/default $(GO) test -race -count=1 -timeout 40m ./...

test-short: ## unit tests only (no root, runc or image needed)
	$(GO) test -race -count=1 -short ./...

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: deps build image ## benchmarks (docs/BENCHMARKS.md): p50/p99 of create, exec, streams, previews, time to interactive, beside bare baselines
	SANDBOXD_TEST_IMAGE=$(IMAGES_DIR)/default $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count 1 -timeout 90m ./e2e/

clean: ## remove build outputs (not the image)
	rm -rf bin/
