# celery-fleet: `make test` works on a fresh Debian/Ubuntu machine from nothing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := redis-server prometheus

.PHONY: all setup venv system-deps lint lint-ci typecheck rules generate check-generated test deploy-test bench fuzz worker dev clean

all: lint typecheck test

# System packages when missing and we are root: redis-server, prometheus/promtool, and the
# deploy test's container runtime (rootful podman on runc; catatonit for pod infra
# containers, netavark + aardvark-dns + iptables for the test's network, debootstrap for the
# base image stand-ins).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v catatonit >/dev/null || missing="$$missing catatonit"; \
	[ -x /usr/lib/podman/netavark ] || missing="$$missing netavark"; \
	[ -x /usr/lib/podman/aardvark-dns ] || missing="$$missing aardvark-dns"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	  else echo "please install:$$missing (apt-get install$$missing)"; exit 1; fi; \
	fi

$(STAMP): pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade uv
	$(BIN)/uv pip install -q --python $(PY) -r requirements.lock
	$(BIN)/uv pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

setup: system-deps $(STAMP)

# The venv alone: CI jobs that only run Pulumi need no redis-server or prometheus.
venv: $(STAMP)

# requirements.lock: everything (dev, infra); requirements-runtime.lock: the image's.
lock:
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements-runtime.lock

lint: $(STAMP)
	$(BIN)/ruff check service infra dashboards policy tests benchmarks
	$(BIN)/ruff format --check service infra dashboards policy tests benchmarks
	# The architecture: layers, nevers and no cycles ([tool.importlinter] in pyproject.toml).
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory lint-ci

# CI definitions and the Dockerfile, offline: vendored schemas, zizmor without its online audits.
lint-ci: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema custom.github-workflows-require-timeout .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(BIN)/zizmor --offline --no-progress --color=never .
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy service infra policy tests/infra tests/ci
	MYPYPATH=tests:tests/infra $(BIN)/mypy tests/deploy

rules: setup
	promtool check rules alerts/*.yaml
	promtool test rules alerts/tests/*.yaml

generate: $(STAMP)
	$(PY) -m dashboards.generate

# Generated dashboards and rules are committed; fail when they drift from the code.
check-generated: generate
	git diff --exit-code -- dashboards/ alerts/ || (echo "generated files drifted: run make generate and commit" && exit 1)

test: setup lint typecheck rules
	$(BIN)/pytest -q

# The deploy test alone: images built from Debian packages and the Dockerfile, the rendered
# dev stack as pods under podman (see README, "Deploy test").
deploy-test: setup
	$(BIN)/pytest -q tests/deploy

bench: setup
	$(BIN)/pytest -q benchmarks --benchmark-only

# The worker fuzz test with a large random batch (make test runs a small fixed one).
fuzz: setup
	FLEET_FUZZ_EXAMPLES=$(or $(EXAMPLES),500) FLEET_FUZZ_RANDOM=1 $(BIN)/pytest -q tests/dlq/test_fuzz.py -k mutated

worker: setup
	$(BIN)/fleet worker -Q $(or $(QUEUES),default)

# The whole stack locally with a demo workload; Ctrl-C stops it.
dev: setup
	$(BIN)/fleet dev

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
