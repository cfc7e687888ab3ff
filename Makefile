# Conifer — build, test and benchmark entry points.
# `make test` is the project's test command (README, .ci/run).

GO      ?= go
PKGS    := ./...
# Packages with concurrency: run again under the race detector.
RACE_PKGS := ./tree/... ./statemachine/... ./emulators/... ./verifier/... ./client/... ./functions/internal/handlers/...

.PHONY: test lint unit race bench fmt vectors

test: lint unit race

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@if command -v terraform >/dev/null 2>&1; then terraform fmt -check -recursive infra; \
	  else echo "terraform is not installed: install the terraform package (terraform fmt checks infra/)"; exit 1; fi

unit:
	$(GO) test -count=1 -timeout 20m $(PKGS)

race:
	@pkgs=$$($(GO) list $(RACE_PKGS) 2>/dev/null); \
	  if [ -n "$$pkgs" ]; then $(GO) test -count=1 -race -short -timeout 20m $$pkgs; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

# Long benchmarks: never part of `make test`. Results go to BENCHMARKS.md by hand.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m $(PKGS)

# Regenerate the checked-in test vectors under testdata/ (see SPEC.md).
vectors:
	$(GO) test -count=1 ./format/... ./checkpoint/... ./vrf/... -run Vectors -update
