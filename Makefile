# lwota: `make run` starts the service on its embedded defaults; `make test` runs every test.
GO       ?= go
BIN      ?= bin
FUZZTIME ?= 5s
DEVICES  ?= 10000

.PHONY: build run test fuzz bench lint clean

build:
	$(GO) build -o $(BIN)/lwota ./cmd/lwota

run: build
	./$(BIN)/lwota serve

# The whole suite, with the race detector: unit, wire, libcoap interop, SQLite and PostgreSQL.
test:
	$(GO) test -race -count=1 -timeout 20m ./...

# Every fuzz target for FUZZTIME each (the seed corpora also run as plain tests in `make test`).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Micro-benchmarks, then the end-to-end registration benchmark with DEVICES emulated devices.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	./$(BIN)/lwota bench --devices $(DEVICES)

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf $(BIN)
