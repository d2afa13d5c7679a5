"""The offline checks `make lint` runs on the CI files are real: each passes the repo's files
and fails a copy broken in the way it exists to catch. Proxies point at a closed loopback
port, so a tool that reached for the network would fail here too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ci_model import ROOT

BIN = ROOT / ".venv" / "bin"
OFFLINE = {
    **os.environ,
    **dict.fromkeys(
        ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"),
        "http://127.0.0.1:9",
    ),
    "NO_PROXY": "",
    "no_proxy": "",
}
CHECKOUT_PIN = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"
OFFLINE.pop("GH_TOKEN", None)
OFFLINE.pop("GITHUB_TOKEN", None)


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} missing: make setup installs it from requirements.lock"
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, cwd=cwd, env=OFFLINE, timeout=120, check=False
    )


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def zizmor_findings(root: Path) -> set[str]:
    proc = run(
        tool("zizmor"),
        *("--offline", "--persona", "auditor", "--format=json", "--no-exit-codes", "."),
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    return {finding["ident"] for finding in json.loads(proc.stdout)}


def test_zizmor_offline_passes_the_repo_and_flags_each_breakage(repo_copy: Path) -> None:
    assert zizmor_findings(repo_copy) == set()
    wf = repo_copy / ".github" / "workflows"
    edit(wf / "ci.yml", "        with:\n          persist-credentials: false\n", "")
    edit(wf / "preview.yml", "\n  pull_request:\n", "\n  pull_request_target:\n")
    edit(wf / "drift.yml", CHECKOUT_PIN, "actions/checkout@v7")
    edit(
        wf / "deploy.yml",
        'digest="${REQUESTED:-',
        'digest="${{ inputs.image-digest }}${REQUESTED:-',
    )
    # Today's long-lived token in a job's env, outside any Environment.
    edit(
        wf / "drift.yml",
        "    concurrency:\n",
        "    env:\n      T: ${{ secrets.PULUMI_ACCESS_TOKEN }}\n    concurrency:\n",
    )
    edit(wf / "drift.yml", "    environment: drift-${{ matrix.stack }}\n", "")
    found = zizmor_findings(repo_copy)
    expected = {"artipacked", "dangerous-triggers", "unpinned-uses", "template-injection"}
    assert expected | {"secrets-outside-env"} <= found, found


@pytest.mark.parametrize(
    ("schema", "old", "new"),
    [
        ("vendor.github-workflows", "runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"),
        ("custom.github-workflows-require-timeout", "    timeout-minutes: 60\n", ""),
    ],
)
def test_the_workflow_schemas_are_vendored_and_catch_breakage(
    repo_copy: Path, schema: str, old: str, new: str
) -> None:
    deploy = repo_copy / ".github" / "workflows" / "deploy.yml"
    check = (tool("check-jsonschema"), "--builtin-schema", schema, str(deploy))
    ok = run(*check)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    edit(deploy, old, new)
    broken = run(*check)
    assert broken.returncode == 1 and "deploy.yml" in broken.stdout + broken.stderr


def test_hadolint_passes_the_dockerfile_and_flags_a_floating_base(repo_copy: Path) -> None:
    dockerfile = repo_copy / "Dockerfile"
    ok = run(tool("hadolint"), str(dockerfile))
    assert ok.returncode == 0, ok.stdout
    edit(dockerfile, "FROM python:3.11-slim-bookworm", "FROM python:latest")
    broken = run(tool("hadolint"), str(dockerfile))
    assert broken.returncode != 0 and "DL3007" in broken.stdout
