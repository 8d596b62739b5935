# pcpgw: `make help` lists the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
OUT     ?= out
GO      ?= go
FUZZTIME ?= 60s
# Separate test modules with heavy client libraries (not in the daemon's module).
TESTMODS := $(patsubst %/go.mod,%,$(shell find . -mindepth 2 -name go.mod -not -path './out/*' | sort))

.PHONY: help build test e2e bench fuzz lint cross deps-test demo clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/pcpgw for this machine
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/pcpgw ./cmd/pcpgw

test: ## all tests; as root it first installs the test peers and runs the end-to-end tests too
	@if [ "$$(id -u)" = 0 ]; then ./scripts/deps-test.sh; fi
	$(GO) test -race -timeout 25m ./...
	@set -e; for m in $(TESTMODS); do echo "== test module $$m"; (cd $$m && $(GO) test -race -timeout 15m ./...); done

e2e: ## only the end-to-end tests (root; they fail instead of skipping)
	./scripts/deps-test.sh
	PCPGW_E2E=1 $(GO) test -race -timeout 25m ./e2e/... ./internal/lab/...
	@set -e; for m in $(TESTMODS); do echo "== test module $$m"; (cd $$m && PCPGW_E2E=1 $(GO) test -race -timeout 15m ./...); done

bench: ## benchmarks (as root: through the real nftables backend too)
	@if [ "$$(id -u)" = 0 ]; then ./scripts/deps-test.sh; fi
	mkdir -p $(OUT)
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./... | tee $(OUT)/bench.txt

fuzz: ## run every fuzz target for FUZZTIME each (default 60s); fails on a crash
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

cross: ## static release binaries for the router targets, with their sizes
	@mkdir -p $(OUT)
	@set -e; for t in linux/amd64// linux/arm64// linux/arm/7/ linux/mipsle//softfloat linux/mips//softfloat; do \
	  os=$$(echo $$t | cut -d/ -f1); arch=$$(echo $$t | cut -d/ -f2); arm=$$(echo $$t | cut -d/ -f3); mips=$$(echo $$t | cut -d/ -f4); \
	  name=pcpgw-$$os-$$arch$${arm:+v$$arm}; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm GOMIPS=$$mips \
	    $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(OUT)/$$name ./cmd/pcpgw; \
	  printf '%-24s %9d bytes\n' $$name $$(stat -c %s $(OUT)/$$name); \
	done

deps-test: ## install the test peers (nftables, miniupnpc, natpmpc, iproute2, netcat, miniupnpd 2.3.9)
	./scripts/deps-test.sh

demo: ## as root: the whole story in a namespace lab (CGN with PCP, pcpgw on the CPE, upnpc and natpmpc on the LAN)
	./scripts/deps-test.sh
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/pcpgw ./cmd/pcpgw
	./scripts/demo.sh bin/pcpgw

clean: ## remove build output
	rm -rf bin $(OUT)
