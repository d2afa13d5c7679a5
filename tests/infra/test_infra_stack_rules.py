"""Each stack deploys alert rules rendered from its own resolved catalog: the backlog a stack
alerts on is the backlog its autoscalers absorb at their maximum, checked by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import require_binary
from infra_harness import STACKS, stack_result
from infra_manifests import manifests

from dashboards.alert_tests import threshold_tests
from infra.config import FleetConfig, parse_config
from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG

ROOT = Path(__file__).resolve().parents[2]


def stack_yaml(stack: str) -> dict[str, Any]:
    """`celery-fleet:*` keys of Pulumi.<stack>.yaml, without the prefix."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    prefix = "celery-fleet:"
    return {k.removeprefix(prefix): v for k, v in doc["config"].items() if k.startswith(prefix)}


def stack_config(stack: str) -> FleetConfig:
    return parse_config(stack_yaml(stack), stack)


def stack_queue_overrides(stack: str) -> dict[str, dict[str, Any]]:
    return {k: v or {} for k, v in (stack_yaml(stack).get("queues") or {}).items()}


def capacity(stack: str, queue: str) -> int:
    """What the stack's autoscaler absorbs at most, read from Pulumi.<stack>.yaml itself
    (the catalog where it is silent): max replicas x backlog per replica."""
    spec = CATALOG.get(queue).autoscaling
    override = stack_queue_overrides(stack).get(queue, {})
    replicas = int(override.get("maxReplicas", spec.max_replicas))
    return replicas * int(override.get("backlogPerReplica", spec.backlog_per_replica))


def deployed_rule_groups(stack: str) -> list[dict[str, Any]]:
    (rule,) = manifests(stack_result(stack)["resources"], "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def alerts_named(stack: str, name: str) -> dict[str, dict[str, Any]]:
    rules = [r for g in deployed_rule_groups(stack) for r in g["rules"] if r.get("alert") == name]
    by_queue = {r["labels"]["queue"]: r for r in rules}
    assert sorted(by_queue) == sorted(CATALOG.names) and len(rules) == len(CATALOG)
    return by_queue


def threshold(rule: dict[str, Any]) -> int:
    return int(rule["expr"].rstrip().rsplit("> ", 1)[1])


@pytest.mark.parametrize("stack", STACKS)
def test_each_backlog_alert_equals_the_stacks_capacity(stack: str) -> None:
    # Given the stack's Pulumi.<stack>.yaml overrides of the catalog's autoscaling
    backlog = alerts_named(stack, "CeleryQueueBacklogHigh")
    # Then each queue's CeleryQueueBacklogHigh fires above what that stack's autoscaler
    # absorbs at max replicas, and its description names the stack's own numbers
    for queue, rule in backlog.items():
        assert threshold(rule) == capacity(stack, queue), (stack, queue)
        assert f"more than {capacity(stack, queue)} waiting" in rule["annotations"]["description"]


def test_prod_alerts_differ_from_the_catalog_defaults_where_prod_overrides_them() -> None:
    # Guards the test above against comparing the catalog with itself: prod raises default's
    # max replicas to 20 (1,000 waiting), where the committed file says 500.
    prod = alerts_named("prod", "CeleryQueueBacklogHigh")
    default = CATALOG.get("default").autoscaling
    assert threshold(prod["default"]) == 20 * default.backlog_per_replica
    assert threshold(prod["default"]) != default.max_replicas * default.backlog_per_replica


@pytest.mark.parametrize("stack", STACKS)
def test_the_stacks_rules_pass_promtool_with_tests_derived_from_its_numbers(
    stack: str, tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": deployed_rule_groups(stack)}, sort_keys=False))
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # Given promtool tests derived from the stack's resolved model (each queue's backlog at
    # its capacity and its oldest task at its wait SLO silent, one over firing), then the
    # deployed rules pass them
    tests = threshold_tests(stack_config(stack).catalog, rule_file=rules.name)
    backlog_cases = [t for t in tests["tests"] if t["name"].startswith("CeleryQueueBacklogHigh")]
    silent_at = {
        t["input_series"][0]["series"]: t["input_series"][0]["values"] for t in backlog_cases
    }
    assert silent_at == {
        f'celery_queue_length{{namespace="at",queue="{q}"}}': f"{capacity(stack, q)}x30"
        for q in CATALOG.names
    }
    unit = tmp_path / "tests.yaml"
    unit.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_max_replica_alerts_watch_the_stacks_own_autoscalers(stack: str) -> None:
    for queue, rule in alerts_named(stack, "CeleryAutoscalerAtMaxReplicas").items():
        assert worker_deployment_name(queue) in rule["expr"]
