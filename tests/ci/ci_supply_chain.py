"""What gets built and installed, and from what: caches that PRs can read but never seed,
the lock files with hashes that every install requires, a minimal Docker build context and
code owners on what runs with cloud credentials. Registered in ci_rules.RULES."""

from __future__ import annotations

import re

from ci_make import recipe_closure
from ci_model import CI, action_of, inputs, jobs, steps
from ci_rules import rule

CACHE = "actions/cache"
BUILD = "docker/build-push-action"
LOCKS = ("requirements.lock", "requirements-runtime.lock", "requirements-bootstrap.lock")
PIN = re.compile(r"^[A-Za-z0-9_.-]+==\S+", re.M)
HASHED_PIN = re.compile(r"^[A-Za-z0-9_.-]+==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", re.M)


def _builds(ci: CI, workflow: str) -> list[dict[str, object]]:
    return [
        inputs(s)
        for j in jobs(ci.workflows[workflow]).values()
        for s in steps(j)
        if action_of(s) == BUILD
    ]


@rule
def caches_layers_venv_and_plugins(ci: CI) -> list[str]:
    bad = []
    deploy = _builds(ci, "deploy")
    if not deploy or not all(
        "type=gha" in str(b.get("cache-from")) and "type=gha" in str(b.get("cache-to"))
        for b in deploy
    ):
        bad.append("deploy: the image build has no layer cache")
    if not all("type=gha" in str(b.get("cache-from")) for b in _builds(ci, "preview")):
        bad.append("preview: the image build reads no layer cache")
    if any("cache-to" in b for b in _builds(ci, "preview")):
        bad.append("preview: a PR writes the layer cache main builds from")
    access = (ci.actions.get("stack-access") or {}).get("runs", {}).get("steps") or []
    restored = {str(inputs(s).get("path")) for s in access if action_of(s).startswith(CACHE)}
    if not {"~/.cache/uv", "~/.pulumi/plugins"} <= restored:
        bad.append(f"stack-access: caches {sorted(restored)}, not uv and Pulumi plugins")
    if any(action_of(s) == CACHE for s in access):
        bad.append("stack-access: saves a cache (PR previews would seed what deploys restore)")
    ci_caches = [
        s for j in jobs(ci.workflows["ci"]).values() for s in steps(j) if action_of(s) == CACHE
    ]
    if not any(inputs(s).get("path") == "~/.cache/uv" for s in ci_caches):
        bad.append("ci: no uv cache")
    return bad


@rule
def locks_have_hashes_and_every_install_requires_them(ci: CI) -> list[str]:
    bad = []
    for lock in LOCKS:
        text = ci.files.get(lock, "")
        pins, hashed = len(PIN.findall(text)), len(HASHED_PIN.findall(text))
        if not pins or pins != hashed:
            bad.append(f"{lock}: {pins - hashed} of {pins} pins without a hash")
    makefile = ci.files.get("Makefile", "")
    compiles = [line for line in recipe_closure(makefile, "lock") if "compile" in line]
    if len(compiles) < len(LOCKS) or not all("--generate-hashes" in c for c in compiles):
        bad.append("make lock: not every lock is compiled with --generate-hashes")
    for line in recipe_closure(makefile, "venv"):
        installs = re.search(r"\bpip install\b", line)
        if installs and " -r " in line and "--require-hashes" not in line:
            bad.append(f"Makefile: `{line}` installs without --require-hashes")
        if installs and " -e " in line and "--no-build-isolation" not in line:
            bad.append("Makefile: the project's build backend is fetched unhashed")
        if installs and not (" -r " in line or " -e " in line):
            bad.append(f"Makefile: `{line}` installs something no lock pins")
    docker = ci.files.get("Dockerfile", "")
    for line in re.findall(r"^RUN .*pip install.*$", docker, re.M):
        if "-r " in line and "--require-hashes" not in line:
            bad.append(f"Dockerfile: `{line}` without --require-hashes")
        if "-r " not in line and "--no-build-isolation" not in line:
            bad.append("Dockerfile: the project's build backend is fetched unhashed")
    return bad


@rule
def docker_context_is_only_what_the_image_copies(ci: CI) -> list[str]:
    ignore = [
        line.strip()
        for line in ci.files.get(".dockerignore", "").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if ignore[:1] != ["*"]:
        return [".dockerignore: does not start by excluding everything (`*`)"]
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for sources in re.findall(r"^COPY\s+(.+)$", ci.files.get("Dockerfile", ""), re.M):
        copied |= {s.rstrip("/") for s in sources.split()[:-1] if not s.startswith("--")}
    return [] if allowed == copied else [f".dockerignore lets in {allowed}, COPY uses {copied}"]


@rule
def code_owners_review_ci_and_infra(ci: CI) -> list[str]:
    owned = {}
    for line in ci.files.get(".github/CODEOWNERS", "").splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            owned[parts[0]] = parts[1:]
    return [
        f"CODEOWNERS: {path} has no owner"
        for path in ("/.github/", "/infra/")
        if not owned.get(path)
    ]
