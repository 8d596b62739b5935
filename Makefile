# pcpgw: `make help` lists the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# No inlining in pcpgw's own packages: 330 KB less on mipsle (6.36 -> 6.03 MB
# stripped), within the router's 6 MiB budget; the hot paths are system
# calls (sendto, netlink), and make bench measures these same flags.
GCFLAGS := github.com/pcpgw/pcpgw/...=-l
OUT     ?= out
GO      ?= go
FUZZTIME ?= 60s
# make fuzz: time to minimize each new input (Go's default, 60s, can stall a
# short run on one input: 15k instead of 200k-450k executions in 30 s of FuzzParseRequest).
FUZZMINIMIZE ?= 100x
# make fuzz: extra flags for go test, e.g. FUZZFLAGS=-parallel=1 to leave a core free.
FUZZFLAGS ?=
# make lint: govulncheck's vulnerability database (a URL, or file:///DIR of a local copy).
GOVULNDB ?= https://vuln.go.dev
# make bench: time and runs per Go micro-benchmark (the median of the runs goes in the table).
BENCHTIME ?= 200ms
BENCHCOUNT ?= 3
# Separate test modules with heavy client libraries (not in the daemon's module).
TESTMODS := $(patsubst %/go.mod,%,$(shell find . -mindepth 2 -name go.mod -not -path './out/*' | sort))

.PHONY: help build test e2e bench fuzz lint cross deps-test demo clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/pcpgw for this machine
	CGO_ENABLED=0 $(GO) build -trimpath -gcflags "$(GCFLAGS)" -ldflags "$(LDFLAGS)" -o bin/pcpgw ./cmd/pcpgw

test: ## all tests; as root it first installs the test peers and runs the end-to-end tests too
	@if [ "$$(id -u)" = 0 ]; then ./scripts/deps-test.sh; fi
	$(GO) test -race -timeout 25m ./...
	@set -e; for m in $(TESTMODS); do echo "== test module $$m"; (cd $$m && $(GO) test -race -timeout 15m ./...); done

e2e: ## only the end-to-end tests (root; they fail instead of skipping)
	./scripts/deps-test.sh
	PCPGW_E2E=1 $(GO) test -race -timeout 25m ./e2e/... ./internal/lab/...
	@set -e; for m in $(TESTMODS); do echo "== test module $$m"; (cd $$m && PCPGW_E2E=1 $(GO) test -race -timeout 15m ./...); done

bench: ## as root: Go micro-benchmarks and pcpgw beside miniupnpd in the lab; one table on stdout and in out/bench.md
	@./scripts/deps-test.sh >&2
	@rm -rf $(OUT)/bench && mkdir -p $(OUT)/bench
	@echo "bench: make cross (sizes in $(OUT)/bench/cross.txt)" >&2
	@$(MAKE) -s cross OUT=$(OUT) >$(OUT)/bench/cross.txt
	@echo "bench: Go micro-benchmarks of every package ($(OUT)/bench/micro.txt)" >&2
	@$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 20m ./... \
	  >$(OUT)/bench/micro.txt 2>&1 || echo "bench: some micro-benchmarks failed: see $(OUT)/bench/micro.txt" >&2
	@echo "bench: CPU and heap profiles of the mapping core benchmark ($(OUT)/bench/mapping-*.pprof)" >&2
	@$(GO) test -run '^$$' -bench BenchmarkCore -benchmem -benchtime $(BENCHTIME) -o $(OUT)/bench/mapping.test \
	  -cpuprofile $(OUT)/bench/mapping-cpu.pprof -memprofile $(OUT)/bench/mapping-mem.pprof ./mapping \
	  >$(OUT)/bench/mapping-profile.txt 2>&1 || echo "bench: mapping profile failed: see $(OUT)/bench/mapping-profile.txt" >&2
	@echo "bench: pcpgw and miniupnpd in the lab, about 10 minutes ($(OUT)/bench/compare.log)" >&2
	@PCPGW_BENCH=1 PCPGW_BENCH_OUT=$(abspath $(OUT)) PCPGW_BIN=$(abspath $(OUT))/pcpgw-linux-amd64 \
	  $(GO) test -run '^TestCompare$$' -count 1 -v -timeout 40m ./bench/ >$(OUT)/bench/compare.log 2>&1 \
	  || { tail -40 $(OUT)/bench/compare.log >&2; exit 1; }
	@cat $(OUT)/bench.md

fuzz: ## run every fuzz target for FUZZTIME each (default 60s); fails on a crash, or when a package's targets cannot be listed
	@set -e; for pkg in $$($(GO) list ./...); do \
	  fs=$$($(GO) test -list '^Fuzz' $$pkg) || { echo "fuzz: cannot list the fuzz targets of $$pkg"; exit 1; }; \
	  for f in $$(printf '%s\n' "$$fs" | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; GO=$(GO) ./scripts/fuzz.sh $$pkg $$f $(FUZZTIME) $(FUZZMINIMIZE) $(FUZZFLAGS); \
	  done; \
	done

lint: ## gofmt, go vet, staticcheck, govulncheck (skipped with a note when its database is unreachable)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...
	@set -e; for m in $(TESTMODS); do (cd $$m && $(GO) vet ./... && PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...); done
	@PATH="$$PATH:$$($(GO) env GOPATH)/bin"; command -v govulncheck >/dev/null || $(GO) install golang.org/x/vuln/cmd/govulncheck@latest
	@PATH="$$PATH:$$($(GO) env GOPATH)/bin"; out=$$(govulncheck -db '$(GOVULNDB)' ./... 2>&1); rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "govulncheck: no known vulnerability reachable ($(GOVULNDB))"; \
	elif printf '%s' "$$out" | grep -q 'fetching vulnerabilities'; then \
	  echo "govulncheck: SKIPPED: its vulnerability database $(GOVULNDB) cannot be reached from here ($$(printf '%s' "$$out" | tail -n 1)); set GOVULNDB=file:///path/to/a/copy to check offline"; \
	else printf '%s\n' "$$out"; exit $$rc; fi

cross: ## static release binaries for the router targets, with their sizes
	@mkdir -p $(OUT)
	@set -e; for t in linux/amd64// linux/arm64// linux/arm/7/ linux/mipsle//softfloat linux/mips//softfloat; do \
	  os=$$(echo $$t | cut -d/ -f1); arch=$$(echo $$t | cut -d/ -f2); arm=$$(echo $$t | cut -d/ -f3); mips=$$(echo $$t | cut -d/ -f4); \
	  name=pcpgw-$$os-$$arch$${arm:+v$$arm}; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm GOMIPS=$$mips \
	    $(GO) build -trimpath -gcflags "$(GCFLAGS)" -ldflags "$(LDFLAGS)" -o $(OUT)/$$name ./cmd/pcpgw; \
	  printf '%-24s %9d bytes\n' $$name $$(stat -c %s $(OUT)/$$name); \
	done

deps-test: ## install the test peers (nftables, miniupnpc, natpmpc, iproute2, netcat, miniupnpd 2.3.9)
	./scripts/deps-test.sh

demo: ## as root: the whole story in a namespace lab (CGN with PCP, pcpgw on the CPE, upnpc and natpmpc on the LAN)
	./scripts/deps-test.sh
	CGO_ENABLED=0 $(GO) build -trimpath -gcflags "$(GCFLAGS)" -ldflags "$(LDFLAGS)" -o bin/pcpgw ./cmd/pcpgw
	./scripts/demo.sh bin/pcpgw

clean: ## remove build output
	rm -rf bin $(OUT)

# OpenWrt package (openwrt/): ARCH is an OpenWrt package architecture.
ARCH ?=
.PHONY: ipk openwrt-test

ipk: ## OpenWrt packages out/pcpgw_VERSION_ARCH.ipk and out/luci-app-pcpgw_VERSION_all.ipk, for ARCH=x86_64|aarch64_generic|arm_cortex-a7_neon-vfpv4|mipsel_24kc|mips_24kc
	@test -n "$(ARCH)" || { echo "make ipk ARCH=x86_64|aarch64_generic|arm_cortex-a7_neon-vfpv4|mipsel_24kc|mips_24kc"; exit 2; }
	GO=$(GO) ./openwrt/build-ipk.sh "$(ARCH)" "$(VERSION)" "$(OUT)"

openwrt-test: ## OpenWrt package: script harness (stubbed procd/uci), ipk contents, fw4 include (as root: nft -c and a lab)
	@mkdir -p $(OUT)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(OUT)/pcpgw-host ./cmd/pcpgw
	sh openwrt/test/run.sh $(OUT)/pcpgw-host
	PCPGW_BIN=$(abspath $(OUT))/pcpgw-host $(GO) test -race -count=1 -timeout 10m ./openwrt/...
