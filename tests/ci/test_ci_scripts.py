"""The scripts the workflows run (.github/scripts/), run for real with stand-ins for `gh` and
`pulumi` on PATH: a missing variable is named, a commit that is not main's head is refused,
pulumi-run picks the backend's stack name, and a failed preview's comment keeps its summary
within GitHub's size limit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from ci_model import ROOT

SCRIPTS = ROOT / ".github" / "scripts"
HEAD = "a" * 40


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


def run(
    script: str, env: dict[str, str], bin_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    path = f"{bin_dir}:{os.environ['PATH']}" if bin_dir else os.environ["PATH"]
    return subprocess.run(
        [str(SCRIPTS / script)],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_require_vars_names_each_missing_variable() -> None:
    done = subprocess.run(
        [str(SCRIPTS / "require-vars"), "AWS_REGION", "EKS_CLUSTER_PROD", "EKS_CLUSTER_DEV"],
        env={"PATH": os.environ["PATH"], "AWS_REGION": "eu-west-1", "EKS_CLUSTER_DEV": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "::error" in done.stdout and "EKS_CLUSTER_PROD" in done.stdout
    assert "EKS_CLUSTER_DEV" in done.stdout and "AWS_REGION" not in done.stdout


@pytest.fixture
def gh_bin(tmp_path: Path) -> Path:
    """A `gh` that answers main's head and ci's runs from files, and logs every call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "head").write_text(HEAD)
    (tmp_path / "passed").write_text("1")
    fake(
        bin_dir,
        "gh",
        f'echo "$*" >> {tmp_path}/calls\n'
        f'case "$*" in *commits/main*) cat {tmp_path}/head;; *ci.yml/runs*) cat {tmp_path}/passed;;'
        " *--jq*) ;; esac",
    )
    return bin_dir


def head_env(sha: str, event: str = "push") -> dict[str, str]:
    return {
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REPOSITORY": "acme/celery-fleet",
        "GITHUB_SHA": sha,
        "GITHUB_EVENT_NAME": event,
    }


def test_require_main_head_refuses_an_older_commit(gh_bin: Path) -> None:
    assert run("require-main-head", head_env(HEAD), gh_bin).returncode == 0
    old = run("require-main-head", head_env("b" * 40), gh_bin)
    assert old.returncode == 1 and "main's head is now" in old.stdout


def test_require_main_head_by_hand_needs_ci_passed(gh_bin: Path) -> None:
    (gh_bin.parent / "passed").write_text("0")
    done = run("require-main-head", head_env(HEAD, "workflow_dispatch"), gh_bin)
    assert done.returncode == 1 and "ci has not passed" in done.stdout
    other = run("require-main-head", {**head_env(HEAD), "GITHUB_REF": "refs/heads/x"}, gh_bin)
    assert other.returncode == 1


@pytest.mark.parametrize(
    ("backend", "stack"),
    [("s3://state/fleet", "dev"), ("", "acme/celery-fleet/dev")],
)
def test_pulumi_run_names_the_stack_for_the_backend(
    tmp_path: Path, backend: str, stack: str
) -> None:
    fake(tmp_path, "pulumi", 'echo "$* backend=${PULUMI_BACKEND_URL-unset}"')
    env = {"STACK": "dev", "PULUMI_BACKEND_URL": backend, "PULUMI_ORGANIZATION": "acme"}
    done = subprocess.run(
        [str(SCRIPTS / "pulumi-run"), "preview", "--diff"],
        env={"PATH": f"{tmp_path}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split(" backend=")[0] == f"preview --diff --stack {stack} --non-interactive"
    assert done.stdout.strip().endswith(backend or "unset")


def test_a_failed_preview_comment_keeps_its_summary_and_fits(tmp_path: Path) -> None:
    log = tmp_path / "preview.log"
    diff = "".join(
        f"    ~ kubernetes:apps/v1:Deployment worker-{i} [diff: ~spec]\n" for i in range(4000)
    )
    log.write_text(
        "Previewing update (prod)\n"
        + diff
        + "Policies:\n    celery-fleet@v0.1.0 (local: policy)\n"
        + "        - [mandatory]  no-root  (kubernetes:apps/v1:Deployment: worker-1)\n"
        + "Diagnostics:\n  pulumi:pulumi:Stack: error: preview failed\n"
        + "Resources:\n    ~ 4000 to update\n"
    )
    fake(tmp_path, "gh", f'for a; do printf "%s\\0" "$a"; done > {tmp_path}/call; echo')
    env = {
        "PR": "7",
        "STACK": "prod",
        "EXIT_CODE": "255",
        "LOG": str(log),
        "GITHUB_REPOSITORY": "acme/celery-fleet",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "1",
        "GITHUB_SHA": HEAD,
    }
    done = run("preview-comment", env, tmp_path)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "call").read_text().split("\0")
    assert args[:3] == ["api", "--method", "POST"]
    body = next(a for a in args if a.startswith("body=")).removeprefix("body=")
    assert len(body) < 65536 and len(log.read_text()) > 65536
    assert body.startswith("<!-- celery-fleet preview: prod -->")
    assert "FAILED (exit 255)" in body and "[mandatory]  no-root" in body
    assert body.index("Diagnostics:") < body.index("<details>")  # summary before the log
    assert "first part cut" in body
