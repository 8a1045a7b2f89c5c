# ecmpscan — build, test, demo. `make test` is what CI runs (.ci/run).
GO      ?= go
BIN     ?= bin/ecmpscan
PKGS    := ./...
export CGO_ENABLED := 0

.PHONY: all build test unit vet fuzz-smoke deps demo bench fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/ecmpscan

# The integration tests build network namespaces with iproute2 and faults with
# nftables; fresh machines have neither, so install them when root can.
deps:
	@need=""; \
	command -v ip  >/dev/null 2>&1 || need="$$need iproute2"; \
	command -v nft >/dev/null 2>&1 || need="$$need nftables"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$need"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  else \
	    echo "missing:$$need (integration tests will skip)"; \
	  fi; \
	fi

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Everything: unit tests, privileged integration tests (they skip with a
# reason when not root), and a short run of every fuzz target.
test: deps vet build
	$(GO) test -count=1 -timeout 25m $(PKGS)
	$(MAKE) --no-print-directory fuzz-smoke FUZZTIME=5s

unit:
	$(GO) test -count=1 -short $(PKGS)

FUZZTIME ?= 60s
FUZZ_TARGETS := probe/packet:FuzzParseIPv4 probe/packet:FuzzParseICMP4 probe/packet:FuzzParseTCP6 \
                probe/packet:FuzzParseICMP6 internal/rawsock:FuzzControl
fuzz-smoke:
	@for pt in $(FUZZ_TARGETS); do \
	  $(GO) test -run='^$$' -fuzz="^$${pt#*:}$$" -fuzztime=$(FUZZTIME) ./$${pt%%:*}/ || exit 1; \
	done

fuzz: fuzz-smoke

# A real ECMP fabric with one forward-blackholed member, one sweep, teardown.
demo: deps build
	@set -e; \
	trap './$(BIN) lab down --name demo >/dev/null 2>&1 || true' EXIT; \
	./$(BIN) lab up --name demo --width 4 --seed 5 --fault blackhole-fwd@p3; \
	echo; echo '$$ ip netns exec esl-demo-c ecmpscan sweep 198.18.2.2:3306 --sport 30000-30031'; \
	ip netns exec esl-demo-c ./$(BIN) sweep 198.18.2.2:3306 --sport 30000-30031 --no-color || test $$? -eq 1

# Engine benchmark, and the documented 2048-port x 3 sweep at 20000 probes/s
# on a healthy lab fabric (see README, "Speed").
bench: deps build
	@[ -x /usr/bin/time ] || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq time >/dev/null; }
	$(GO) test -run='^$$' -bench=. -benchmem ./probe/ ./probe/packet/ ./hash/
	@set -e; \
	trap './$(BIN) lab down --name bench >/dev/null 2>&1 || true' EXIT; \
	./$(BIN) lab up --name bench --width 8 --seed 3 >/dev/null; \
	for i in 1 2 3; do \
	  /usr/bin/time -f 'wall %es  max RSS %MkB' ip netns exec esl-bench-c ./$(BIN) sweep 198.18.2.2:3306 \
	    --sport 20000-22047 -c 3 --rate 20000 --timeout 1s --icmp 0 --quiet; \
	done

clean:
	rm -rf bin
