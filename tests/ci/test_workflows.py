"""The GitHub Actions workflows keep every CI/CD property the README promises; each rule is
also shown failing on a copy of the real files broken the way a careless edit would."""

from __future__ import annotations

import ci_hygiene  # noqa: F401  (registers its rules)
import ci_safety  # noqa: F401
import ci_supply_chain  # noqa: F401
import pytest
from ci_breakages import BREAKAGES
from ci_breakages_safety import SAFETY_BREAKAGES
from ci_model import CI, load
from ci_mutations import Mutation
from ci_rules import RULES

ALL = BREAKAGES + SAFETY_BREAKAGES


@pytest.fixture(scope="module")
def ci() -> CI:
    return load()


def test_the_repo_has_the_four_workflows_and_the_stack_access_action(ci: CI) -> None:
    assert set(ci.workflows) == {"ci", "preview", "deploy", "drift"}
    assert set(ci.actions) == {"stack-access"}


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_holds(ci: CI, name: str) -> None:
    assert RULES[name](ci) == []


def test_every_rule_has_a_breakage() -> None:
    assert {name for name, _, _ in ALL} == set(RULES)


@pytest.mark.parametrize(
    ("name", "mutation"),
    [pytest.param(n, m, id=f"{n}: {why}") for n, why, m in ALL],
)
def test_rule_catches_the_breakage(ci: CI, name: str, mutation: Mutation) -> None:
    broken = ci.copy()
    mutation(broken)
    assert RULES[name](broken) != []
