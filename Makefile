# lwota: `make run` starts the service on its embedded defaults; `make test` runs every test.
GO       ?= go
BIN      ?= bin
# Fuzz budget per target as an execution count: a duration (-fuzztime 3s) can end in a spurious
# 'context deadline exceeded' on a loaded machine (Go's fuzz coordinator, go.dev/issue/75804, fixed in 1.27).
FUZZTIME ?= 20000x
DEVICES  ?= 10000
PULL_SECONDS ?= 30
DTLS_SECONDS ?= 10
FLEET_DEVICES ?= 50000
FLEET_DTLS ?= 30000
# The PostgreSQL of the registration benchmark's ratio: auto starts a durable throwaway cluster
# (initdb, pg_ctl); a postgres:// URL uses that server; empty skips PostgreSQL.
BENCH_POSTGRES ?= auto
# The S3-compatible server the blob-store and upload tests run against (Apache-2.0), built from source.
VERSITYGW_VERSION ?= v1.8.0

.PHONY: norace-tests build run cluster deps test pion-patches tools fuzz bench lint openapi-lint clean

build:
	$(GO) build -o $(BIN)/lwota ./cmd/lwota

run: build
	./$(BIN)/lwota serve --allow-nosec

# A cluster on loopback to try: a throwaway PostgreSQL, versitygw, three nodes and nginx's UDP
# balancer in front of them (needs `make deps` for nginx); prints the addresses, Ctrl-C stops all.
cluster: build tools
	./$(BIN)/lwota dev cluster

# System programs the suite runs (libcoap's clients, PostgreSQL, Chromium, nginx, ...). The list is
# cmd/testdeps/sysdeps; missing packages are installed with apt-get when run as root, else this
# prints the one apt-get line to run and stops.
deps:
	$(GO) run ./cmd/testdeps install

# Test servers the suite starts itself; bin/ is kept between runs, so this is a no-op once built.
tools: $(BIN)/versitygw

$(BIN)/versitygw:
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# The whole suite, with the race detector: unit, wire, libcoap interop, SQLite, PostgreSQL and S3.
# Three packages at once on two cores: most of the end-to-end packages' time is waiting on timers,
# lifetimes and retransmissions (cmd/lwota alone is 640 s), so a third lane fills idle cores; the
# suite is held to passing beside stress-ng --cpu 2 anyway.
TEST_PACKAGES ?= 3
test: deps tools
	$(GO) test -race -count=1 -p $(TEST_PACKAGES) -timeout 45m ./...
	$(MAKE) norace-tests
	$(MAKE) pion-patches

# The tests that count allocations or measure the live heap skip under the race detector (it
# allocates in the runtime's I/O and drops sync.Pool items at random); they run here without it.
norace-tests:
	$(GO) test -count=1 -run '^(TestUpdateAllocations|TestSessionConnAllocations|TestReadDatagramAllocations|TestDTLSSessionHoldsNoReadBuffer)$$' ./server/registration ./server/transport

# The regression tests of lwota's patches to pion/dtls (third_party/pion-dtls: its own module, so
# not in ./...): every test of its *_lwota_test.go files, and the packages whose tests the patches
# extended (the allocation tests once more without -race, under which sync.Pool drops items). Upstream's whole suite is not run here: its TestNetTest/BasicIO is a known flake.
pion-patches:
	cd third_party/pion-dtls && \
	  $(GO) test -race -count=1 -short -run "^($$(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(.*/\1/p' *_lwota_test.go | paste -sd'|'))$$" . && \
	  $(GO) test -race -count=1 -short ./pkg/crypto/ccm ./pkg/crypto/signaturehash ./pkg/crypto/ciphersuite && \
	  $(GO) test -count=1 -short -run 'Allocations' ./pkg/crypto/ciphersuite

# Every fuzz target for FUZZTIME executions each (the seed corpora also run as plain tests in `make test`):
# .ci/fuzz builds each package's instrumented test binary once and runs its targets one by one.
fuzz:
	.ci/fuzz $(FUZZTIME) $(GO)

# Micro-benchmarks, the registration benchmark with DEVICES emulated devices (then with the raw
# registration client; each beside PostgreSQL, BENCH_POSTGRES above, the two servers measured in
# alternating rounds of new devices: one round each with the emulated devices, whose CPU bounds
# the rate, three with the raw client, whose ratios judge issue 16's goal), firmware pull
# throughput at 16, 64 and 1000 devices over DTLS with each cipher suite LwM2M devices use for
# PULL_SECONDS each, in 3 rounds, each beside a plain CoAP round of the same length and that one
# beside a raw UDP echo round (the ratios: medians of the pairs'; 4.5 min per device count at
# 30 s, where the runs one after the other took 5 min at 60 s; BenchmarkDTLSBlock2 guards it),
# DTLS PSK handshakes per second for DTLS_SECONDS per server (lwota, bare pion, libcoap+OpenSSL: server
# CPU per handshake as ratios), a campaign to DEVICES devices, and 1 node direct against 1 and 3
# nodes behind nginx (needs nginx from `make deps` and versitygw from `make tools`), and what one node
# holds (lwota bench fleet: FLEET_DEVICES idle devices, FLEET_DTLS idle DTLS sessions; the goal's
# full size is `lwota bench fleet --devices 250000 --campaign-devices 10000 --dtls-sessions 100000`).
bench: build tools
	$(GO) test -run '^$$' -bench . -benchmem ./...
	./$(BIN)/lwota bench --devices $(DEVICES) --concurrency 256 --rounds 1 --update-rounds 1 $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))
	./$(BIN)/lwota bench --devices $(DEVICES) --concurrency 256 --client raw $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))
	./$(BIN)/lwota bench pull --devices 16,64,1000 --duration $(PULL_SECONDS)s --rounds 3 --dtls --cipher psk-ccm8,psk-gcm,ecdhe-ccm8
	./$(BIN)/lwota bench dtls --clients 1,16,64 --duration $(DTLS_SECONDS)s
	./$(BIN)/lwota bench campaign --devices $(DEVICES) --image-size 65536
	./$(BIN)/lwota bench bootstrap --devices 1000
	./$(BIN)/lwota bench cluster --devices $(DEVICES)
	./$(BIN)/lwota bench fleet --devices $(FLEET_DEVICES) --campaign-devices 2000 --dtls-sessions $(FLEET_DTLS)

lint: deps openapi-lint
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# The OpenAPI document, linted by a pinned Redocly CLI from npm (the first run downloads it, about 30 s).
# recommended-strict is Redocly's recommended rule set with every warning made an error: zero of both.
# Telemetry is off: the linter talks to nothing but npm. 1.34.20 is the newest release that runs on
# Debian 12's own Node.js 18 (2.x needs Node 20.19), so `make deps`'s npm package is enough.
openapi-lint:
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true npx --yes @redocly/cli@1.34.20 lint --extends recommended-strict api/openapi.json

clean:
	rm -rf $(BIN)
