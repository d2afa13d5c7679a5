"""Fixtures for the dashboards/alerts tests: the generated files, the committed files, and
the promtool/prometheus binaries (missing: skip locally, FAIL when `CI` is set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import require_binary

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "alerts").glob("*.yaml"))
RULE_TEST_FILES = sorted((REPO / "alerts" / "tests").glob("*.yaml"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups.extend(load_yaml(path)["groups"])
    return groups


@pytest.fixture(scope="session")
def alert_rules(rule_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in rule_groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="session")
def rule_tests() -> list[dict[str, Any]]:
    """Every test case of every promtool test file."""
    cases: list[dict[str, Any]] = []
    for path in RULE_TEST_FILES:
        cases.extend(load_yaml(path)["tests"])
    return cases
