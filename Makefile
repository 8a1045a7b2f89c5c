# ecmpscan — build, test, demo. `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     ?= bin/ecmpscan
PKGS    := ./...
export CGO_ENABLED := 0

# The commit goes into --version even where Go records no VCS information.
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -X github.com/ecmpscan/ecmpscan/internal/cli.commit=$(COMMIT)

# staticcheck is fetched and run with `go run` at this pinned version.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Every platform the binary must build for, with CGO_ENABLED=0.
CROSS := linux/amd64 linux/arm64 linux/386 linux/arm darwin/arm64 darwin/amd64

.PHONY: all build test unit race cross staticcheck vet fuzz-smoke deps demo bench fuzz man accuracy clean deploy-check

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ecmpscan

# The integration tests build network namespaces with iproute2 and faults
# with nftables; the race detector needs a C compiler; the bench measures
# RSS with GNU time. Fresh machines have none of them, so install them when
# root can.
deps:
	@need=""; \
	command -v ip  >/dev/null 2>&1 || need="$$need iproute2"; \
	command -v nft >/dev/null 2>&1 || need="$$need nftables"; \
	command -v gcc >/dev/null 2>&1 || need="$$need gcc libc6-dev"; \
	[ -x /usr/bin/time ]           || need="$$need time"; \
	command -v promtool >/dev/null 2>&1 || need="$$need prometheus"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$need"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null; \
	  else \
	    echo "missing:$$need (integration tests skip, make race needs gcc)"; \
	  fi; \
	fi

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

staticcheck:
	$(GO) run $(STATICCHECK) $(PKGS)

# The binary for every platform, and the tests compiled for a 32-bit one
# and a non-Linux one (vet type-checks them).
cross:
	@for t in $(CROSS); do \
	  echo "build $$t"; GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o /dev/null $(PKGS) || exit 1; \
	done
	GOOS=linux GOARCH=386 $(GO) vet $(PKGS)
	GOOS=darwin GOARCH=arm64 $(GO) vet $(PKGS)

# Unit packages under the race detector (it needs cgo); the end-to-end
# package runs once, below, without it.
race:
	CGO_ENABLED=1 $(GO) test -race -short -count=1 $$($(GO) list $(PKGS) | grep -v /internal/e2e)

# Everything: vet, staticcheck, cross-builds, the race run, unit tests,
# privileged integration tests (they skip with a reason when not root), and
# a short run of every fuzz target. The fuzz budget is a count, not a time:
# Go 1.26's fuzz coordinator can fail a target with a spurious "context
# deadline exceeded" at the end of a -fuzztime duration (Go issue 75804).
test: deps vet staticcheck cross build race deploy-check
	$(GO) test -count=1 -timeout 25m $(PKGS)
	$(MAKE) --no-print-directory fuzz-smoke FUZZTIME=100000x

# The deploy/ files: Prometheus's own checks of the scrape config and the
# alert rules, the rules' unit tests, and the exporter's example config.
deploy-check: deps build
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/ecmpscan-alerts.yml
	cd deploy/prometheus && promtool test rules ecmpscan-alerts_test.yml
	$(BIN) exporter --config deploy/exporter.yml --check-config

unit:
	$(GO) test -count=1 -short $(PKGS)

FUZZTIME ?= 60s
FUZZMINIMIZE ?= 5s
FUZZ_TARGETS := probe/packet:FuzzParseIPv4 probe/packet:FuzzParseICMP4 probe/packet:FuzzParseTCP6 \
                probe/packet:FuzzParseICMP6 internal/rawsock:FuzzControl report:FuzzDecodeSweep \
                internal/cli:FuzzParsePorts internal/cli:FuzzParseTarget internal/lab:FuzzParseFault \
                report:FuzzDiagnose internal/responder:FuzzDecodeRequest internal/responder:FuzzParseSYN \
                internal/responder:FuzzDecodeReverse internal/exporter:FuzzParseConfig internal/route:FuzzParseReply \
                report:FuzzDecodeTrace probe/packet:FuzzStamped
# Minimizing is bounded: Go spends up to a minute shrinking each new
# interesting input, with no execs counted meanwhile (the stalls at
# "0/sec"); a smoke run wants the executions, and a crasher is still
# reported, only less shrunk.
fuzz-smoke:
	@for pt in $(FUZZ_TARGETS); do \
	  $(GO) test -run='^$$' -fuzz="^$${pt#*:}$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) ./$${pt%%:*}/ || exit 1; \
	done

fuzz: fuzz-smoke

# Man pages, one per command, from the command tree.
man:
	$(GO) run ./internal/tools/genman bin/man
	@ls bin/man

# Real ECMP fabrics of plain Linux routers (the lab's default): one
# forward-blackholed member and a sweep; then the seed's incident, a member
# that loses the answers on the way back, swept and traced two-ended with a
# responder in the server namespace; teardown.
demo: deps build
	@set -e; \
	trap './$(BIN) lab down --name demo >/dev/null 2>&1 || true' EXIT; \
	./$(BIN) lab up --name demo --width 4 --seed 5 --fault blackhole-fwd@p3; \
	echo; echo '$$ ip netns exec esl-demo-c ecmpscan sweep 198.18.2.2:3306 --sport 30000-30031'; \
	ip netns exec esl-demo-c ./$(BIN) sweep 198.18.2.2:3306 --sport 30000-30031 --no-color || test $$? -eq 1; \
	./$(BIN) lab down --name demo >/dev/null; echo; \
	./$(BIN) lab up --name demo --width 4 --width2 3 --seed 5 --fault blackhole-ret@q2 --responder 7000; \
	echo; echo '$$ ip netns exec esl-demo-c ecmpscan sweep 198.18.2.2:3306 --sport 30000-30095 --trace --quiet --responder 198.18.2.2:7000 --token-file /run/ecmpscan/lab-demo-token'; \
	ip netns exec esl-demo-c ./$(BIN) sweep 198.18.2.2:3306 --sport 30000-30095 --trace --quiet --no-color \
	  --responder 198.18.2.2:7000 --token-file /run/ecmpscan/lab-demo-token || test $$? -eq 1

# Engine benchmarks, then the documented sweeps on a healthy 8-way lab
# fabric (see README, "Speed"): 2048 ports x 3 at 20000/s, and the memory
# bound, 256 ports x 2000 (512k probes) at 50000/s.
bench: deps build
	$(GO) test -run='^$$' -bench=. -benchmem ./probe/ ./probe/packet/ ./hash/
	@set -e; \
	trap './$(BIN) lab down --name bench >/dev/null 2>&1 || true' EXIT; \
	./$(BIN) lab up --name bench --width 8 --seed 3 >/dev/null; \
	for i in 1 2 3; do \
	  echo "2048 ports x 3 at 20000/s:"; \
	  /usr/bin/time -f 'wall %es  max RSS %MkB' ip netns exec esl-bench-c ./$(BIN) sweep 198.18.2.2:3306 \
	    --sport 20000-22047 -c 3 --rate 20000 --timeout 1s --icmp 0 --quiet; \
	done; \
	echo "256 ports x 2000 at 50000/s:"; \
	/usr/bin/time -f 'wall %es  max RSS %MkB' ip netns exec esl-bench-c ./$(BIN) sweep 198.18.2.2:3306 \
	  --sport 20000-20255 -c 2000 --rate 50000 --timeout 1s --icmp 0 --quiet

# The trace diagnosis's accuracy over random lab fabrics, per ICMP source
# mode x ICMP path x fault kind (README, "How right is the diagnosis?").
# A measurement, not part of make test. ACCURACY_FABRICS fabrics, drawn from
# ECMPSCAN_E2E_SEED.
ACCURACY_FABRICS ?= 100
accuracy: deps
	ECMPSCAN_ACCURACY=$(ACCURACY_FABRICS) CGO_ENABLED=0 $(GO) test -count=1 -timeout 60m -v -run '^TestTraceAccuracy$$' ./internal/e2e/

clean:
	rm -rf bin
