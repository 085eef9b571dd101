# One place for the project's commands; CI and the README call these targets.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help tools generate check-generated fmt lint build unit-test test demo demo-keep bench bench-cluster-start

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

tools: ## Build (or reuse) the pinned Kubernetes, etcd, kwok, helm and registry binaries
	@scripts/tools.sh >/dev/null

generate: ## Regenerate the CRDs in the charts from the Rust types
	$(CARGO) run -q -p kaito-api --bin crdgen

check-generated: ## Fail when the committed CRDs differ from the Rust types
	$(CARGO) run -q -p kaito-api --bin crdgen -- --check

fmt: ## Format the Rust code
	$(CARGO) fmt --all

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build: ## Build every binary (the tests run the controllers as processes)
	$(CARGO) build --workspace --bins

unit-test: ## Tests that need no cluster
	$(CARGO) test --workspace --lib --bins

test: tools check-generated lint build ## Every test: unit, local control plane, charts and end to end
	$(CARGO) test --workspace --no-fail-fast

demo: tools build ## Local cluster, AKS stand-in, both controllers; two Workspaces to Ready
	$(CARGO) run -q -p kaito-e2e --bin demo

demo-keep: tools build ## The demo, leaving the cluster running for kubectl
	$(CARGO) run -q -p kaito-e2e --bin demo -- --keep

# One build of all three, then the binary itself: `cargo run -p kaito-bench` alone would
# resolve features anew and build every dependency a second time.
BENCH_BUILD = $(CARGO) build --release -p workspace-controller -p gpu-provisioner -p kaito-bench
BENCH_BINS = $${CARGO_TARGET_DIR:-target}/release

bench: tools ## Benchmark both controllers (release build; BENCH_ARGS=--help for options)
	$(BENCH_BUILD)
	$(BENCH_BINS)/kaito-bench $(BENCH_ARGS)

bench-cluster-start: tools ## Median start time of the local cluster (BENCH_ARGS="--starts N")
	$(BENCH_BUILD)
	$(BENCH_BINS)/cluster-start $(BENCH_ARGS)
