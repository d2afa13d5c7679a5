"""Fixtures for the Pulumi program tests; the helpers live in infra_harness.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `infra`, `policy` and `service` import from the repo root
    sys.path.insert(0, str(ROOT))

from infra_harness import STACKS, stack_result  # noqa: E402


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def result(stack: str) -> dict[str, Any]:
    return stack_result(stack)


@pytest.fixture
def resources(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["resources"])
