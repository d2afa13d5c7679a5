"""Fixtures for the Pulumi program tests: each stack runs once per session, in its own
process (tests/infra/run_stack.py), so Pulumi's global runtime state never leaks between
stacks or into other tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "run_stack.py"
STACKS = ("dev", "prod")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_RUNS: dict[str, dict[str, Any]] = {}


def run_stack(stack: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the program for `stack` under mocks in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, str(RUNNER), stack, *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def stack_result(stack: str) -> dict[str, Any]:
    if stack not in _RUNS:
        proc = run_stack(stack)
        assert proc.returncode == 0, f"stack {stack} failed:\n{proc.stderr[-4000:]}"
        _RUNS[stack] = json.loads(proc.stdout)
    return _RUNS[stack]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def result(stack: str) -> dict[str, Any]:
    return stack_result(stack)


@pytest.fixture
def resources(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["resources"])
