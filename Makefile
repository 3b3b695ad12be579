# One entry point for every routine task. README and .ci/run call these targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Installs the pinned tools (once) and points every program and test at them.
TOOLS_ENV = tools=$$(e2e/tools/install.sh $(1)) && \
  export BERTH_KUSTOMIZE=$$tools/kustomize BERTH_OPA=$$tools/opa BERTH_HELM=$$tools/helm \
  BERTH_SOPS=$$tools/sops BERTH_AGE_KEYGEN=$$tools/age-keygen

.PHONY: help up test lint unit e2e tools kube fmt policies crds bench bench-operator

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

up: ## Run Berth locally: control plane, Git server, operator, two sample tenants; until Ctrl-C
	@export BERTH_KUBE_BIN=$$(e2e/kube-harness/build.sh) && \
	  $(call TOOLS_ENV) && \
	  $(CARGO) build --locked --bins && \
	  exec target/debug/up $(UP_ARGS)

test: tools lint unit e2e ## The whole suite: lint, opa test, unit tests, end-to-end tests on a real control plane

tools: ## Install pinned test tools (Debian packages, opa, kustomize, helm, sops, age-keygen)
	@e2e/tools/install.sh >/dev/null

kube: ## Build the local control plane (cached per Kubernetes version)
	@e2e/kube-harness/build.sh

lint: ## rustfmt, clippy (warnings are errors), gofmt and go vet of the harness
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@test -z "$$(gofmt -l e2e/kube-harness)" || { gofmt -l e2e/kube-harness; echo "gofmt: files above need formatting"; exit 1; }
	cd e2e/kube-harness && go vet ./...
	@OPA=$$(e2e/tools/install.sh)/opa policies/build.sh --check

crds: ## Regenerate deploy/crds/ from the Rust API types
	$(CARGO) run --quiet -p berth-operator -- crds > deploy/crds/berth.dev.yaml

policies: ## opa test the policy library and rebuild its committed WebAssembly bundle
	@export OPA=$$(e2e/tools/install.sh)/opa && "$$OPA" test policies/berth && policies/build.sh

unit: ## Unit tests (no cluster; the real kustomize, helm, sops and opa CLIs), and opa test of the policies
	@$(call TOOLS_ENV) && \
	  "$$BERTH_OPA" test policies/berth && \
	  $(CARGO) test --workspace --locked --exclude berth-e2e

e2e: ## End-to-end tests against a fresh local control plane
	@export BERTH_KUBE_BIN=$$(e2e/kube-harness/build.sh) && \
	  $(call TOOLS_ENV) && \
	  export BERTH_E2E_RUN_ID=e2e$$$$ && \
	  $(CARGO) build --locked --bins && \
	  $(CARGO) test --locked -p berth-e2e -- --test-threads 4 && \
	  e2e/kube-harness/assert-stopped.sh "$$BERTH_E2E_RUN_ID" "$(CURDIR)/target/debug"

bench: ## Benchmark the tenant agent on a fresh local control plane (release build; medians)
	@export BERTH_KUBE_BIN=$$(e2e/kube-harness/build.sh) && \
	  $(call TOOLS_ENV,--bench) && export BERTH_CONFTEST=$$tools/conftest && \
	  $(CARGO) build --locked --release --bins && \
	  target/release/bench

bench-operator: ## Benchmark the operator: 100 tenants with agents, then 1,000 without (release build)
	@export BERTH_KUBE_BIN=$$(e2e/kube-harness/build.sh) && \
	  $(call TOOLS_ENV) && \
	  export BERTH_E2E_RUN_ID=bench$$$$ && \
	  $(CARGO) build --locked --release --bins && \
	  target/release/bench_operator && \
	  e2e/kube-harness/assert-stopped.sh "$$BERTH_E2E_RUN_ID" "$(CURDIR)/target/release"

fmt: ## Format Rust and Go sources
	$(CARGO) fmt --all
	gofmt -w e2e/kube-harness
