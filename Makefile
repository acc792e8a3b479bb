# msrpgw — `make test` is what CI runs (.ci/run); it installs what the tests need when it is missing.
GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
FUZZTIME    ?= 10s

.PHONY: test tools vet lint unit fuzz fuzz-long soak bench build run

test: tools vet lint unit fuzz

tools:
	./scripts/ensure-tools.sh

vet:
	$(GO) vet ./...

lint: tools
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GOBIN)/staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

fuzz-long:
	FUZZTIME=5m ./scripts/fuzz.sh

# The full-size loss test of the delivery issue: 10,000 messages each way over 50 sessions, faults injected.
soak:
	MSRPGW_SOAK=1 $(GO) test -race -count=1 -timeout 20m -run 'TestLossAccounting' -v ./gateway

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

build:
	$(GO) build -o bin/ ./cmd/...

run:
	$(GO) run ./cmd/msrpgw
