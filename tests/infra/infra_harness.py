"""Run the Pulumi program for a stack in a fresh interpreter (tests/infra/run_stack.py) and
cache each stack's result for the session, so Pulumi's global runtime state never leaks
between stacks or into other tests. (A module of its own: `conftest` is ambiguous.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "run_stack.py"
STACKS = ("dev", "prod")

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


def dev_in_mode(mode: str) -> dict[str, Any]:
    """The dev stack (HPA, provider installed) with only `autoscaler.mode` changed."""
    if mode == "hpa":
        return stack_result("dev")
    key = f"dev-{mode}"
    if key not in _RUNS:
        import yaml

        doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
        autoscaler = dict(doc["config"]["celery-fleet:autoscaler"], mode=mode)
        proc = run_stack("dev", "--set", f"autoscaler={json.dumps(autoscaler)}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        _RUNS[key] = json.loads(proc.stdout)
    return _RUNS[key]
