# celery-fleet: `make test` works on a fresh Debian/Ubuntu machine from nothing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all setup venv system-deps deploy-deps test-no-root lint lint-ci typecheck rules generate check-generated test deploy-test bench fuzz worker dev clean

all: lint typecheck test

# System packages when missing and we are root (CI runs `sudo make system-deps` first):
# redis-server, prometheus/promtool and PostgreSQL (initdb/pg_ctl: the result backend tests
# start their own server; the package's own service is stopped) for `make test-no-root`.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	$(APT_INSTALL)

# The deploy test's container runtime on top: rootful podman on runc; catatonit for pod infra
# containers, netavark + aardvark-dns + iptables for the test's network, debootstrap for the
# base image stand-ins (Python, Redis, PostgreSQL: debootstrap fetches their Debian packages
# from the archive apt uses, into the image; the host needs no more than this).
deploy-deps: system-deps
	@missing=""; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v catatonit >/dev/null || missing="$$missing catatonit"; \
	[ -x /usr/lib/podman/netavark ] || missing="$$missing netavark"; \
	[ -x /usr/lib/podman/aardvark-dns ] || missing="$$missing aardvark-dns"; \
	$(APT_INSTALL)

APT_INSTALL = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    systemctl disable --now prometheus >/dev/null 2>&1 || true; \
	    systemctl disable --now postgresql >/dev/null 2>&1 || true; \
	  else echo "please install:$$missing (apt-get install$$missing)"; exit 1; fi; \
	fi

# Every install checks hashes: uv itself from requirements-bootstrap.lock, then everything from
# requirements.lock (`--require-hashes`). The project is installed last, editable, with no deps
# and no build isolation: its build backend (setuptools) is already in the venv from the lock,
# so nothing unhashed is downloaded to build it.
$(STAMP): pyproject.toml requirements.lock requirements-bootstrap.lock
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-bootstrap.lock
	$(BIN)/uv pip install -q --python $(PY) --require-hashes -r requirements.lock
	$(BIN)/uv pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: system-deps $(STAMP)

# The venv alone: CI jobs that only run Pulumi need no redis-server or prometheus.
venv: $(STAMP)

# The lock files, all with hashes (installs use --require-hashes): requirements.lock is
# everything (dev, infra), requirements-runtime.lock the image's, constrained to the same
# versions, requirements-bootstrap.lock the uv that installs them. Both project locks carry the
# build backend (requirements-build.in). uv keeps the versions already pinned in each output
# file: rerun after adding a dependency; `make lock UPGRADE=--upgrade` to move everything.
LOCK := $(BIN)/uv pip compile --quiet --python-version 3.11 --generate-hashes $(UPGRADE)
lock:
	$(LOCK) pyproject.toml requirements-build.in --all-extras -o requirements.lock
	$(LOCK) pyproject.toml requirements-build.in -c requirements.lock -o requirements-runtime.lock
	$(LOCK) requirements-bootstrap.in -o requirements-bootstrap.lock

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
	$(BIN)/zizmor --offline --persona auditor --no-progress --color=never .
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

# Everything: the suite as any user, then the deploy test (root, via sudo when not root).
test: test-no-root deploy-test

# Lint, types, promtool and every test but the deploy test: never needs root (CI runs it as
# the runner's own user). Two pytest-xdist workers, a test file each at a time: the suite
# mostly waits on real workers and servers (each xdist worker starts its own redis-server),
# so two halve its time on two cores. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
test-no-root: setup lint typecheck rules
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --ignore=tests/deploy

# The deploy test alone: images built from Debian packages and the Dockerfile, the rendered
# dev stack as pods under rootful podman (see README, "Deploy test"). As root it runs as is;
# otherwise through `sudo -n`, keeping this PATH (the venv, the job's Python) and CI, and
# writing no root-owned caches into the checkout. Without root or sudo the test itself skips
# (locally) or fails (CI) saying so.
deploy-test: deploy-deps setup
	@if [ "$$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then \
	  as_root=(sudo -n env "PATH=$$PATH" "CI=$${CI:-}" PYTHONDONTWRITEBYTECODE=1); \
	else as_root=(); fi; \
	set -x; "$${as_root[@]}" $(BIN)/pytest -q -p no:cacheprovider tests/deploy

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
