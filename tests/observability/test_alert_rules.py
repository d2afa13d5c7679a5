"""Alert rules: required labels and annotations, links to the generated dashboards,
thresholds taken from the catalog, and promtool test coverage of every alert."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dashboards.alerts import (
    HARD_LIMIT_RATIO,
    backlog_threshold,
    duration_warning_seconds,
    oldest_age_slo_seconds,
)
from service.catalog.naming import autoscaler_name
from service.catalog.queues import CATALOG

REPO = Path(__file__).resolve().parents[2]
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook", "dashboard"}
# Alerts that fire on the first evaluation on purpose (each dead letter, each dead worker's
# redelivery is worth a look).
NO_FOR = {"CeleryDeadLetterQueueReceiving", "CeleryDeadLetterParked", "CeleryTasksRedelivered"}
PER_QUEUE = {
    "CeleryQueueBacklogHigh",
    "CeleryQueueOldestTaskTooOld",
    "CeleryTaskNearHardTimeLimit",
    "CeleryAutoscalerAtMaxReplicas",
}
ALERTS_BRIEF = {
    "CeleryTaskFailureRateHigh",
    "CeleryQueueBacklogHigh",
    "CeleryQueueOldestTaskTooOld",
    "CeleryDeadLetterQueueReceiving",
    "CeleryDeadLetterParked",
    "CeleryQueueNoConsumers",
    "CeleryExporterDown",
    "CeleryAutoscalerAtMaxReplicas",
    "CeleryTaskNearHardTimeLimit",
    "CeleryTasksRedelivered",
    # issue 19: a queue's length missing, its autoscaler holding blind
    "CeleryAutoscalerMetricMissing",
}


def dashboard_uids() -> set[str]:
    return {
        json.loads(p.read_text(encoding="utf-8"))["uid"]
        for p in (REPO / "dashboards").glob("*.json")
    }


def test_the_expected_alerts_exist(alert_rules: list[dict[str, Any]]) -> None:
    assert {r["alert"] for r in alert_rules} == ALERTS_BRIEF


def test_labels_and_annotations(alert_rules: list[dict[str, Any]]) -> None:
    uids = dashboard_uids()
    for rule in alert_rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert set(annotations) >= REQUIRED_ANNOTATIONS, name
        assert all(annotations[key].strip() for key in REQUIRED_ANNOTATIONS), name
        link = re.fullmatch(r"/d/([\w-]+)(\?.*)?", annotations["dashboard"])
        assert link and link.group(1) in uids, f"{name}: bad dashboard link"


def test_for_windows(alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        if rule["alert"] in NO_FOR:
            assert "for" not in rule, rule["alert"]
        else:
            assert re.fullmatch(r"\d+m", rule.get("for", "")), f"{rule['alert']}: no for:"


def per_queue(alert_rules: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    rules = {r["labels"]["queue"]: r for r in alert_rules if r["alert"] == name}
    assert set(rules) == set(CATALOG.names), f"{name}: not one rule per catalog queue"
    return rules


@pytest.mark.parametrize("queue", CATALOG.names)
def test_per_queue_thresholds_come_from_the_catalog(
    alert_rules: list[dict[str, Any]], queue: str
) -> None:
    spec = CATALOG.get(queue)
    backlog = per_queue(alert_rules, "CeleryQueueBacklogHigh")[queue]["expr"]
    assert backlog.rstrip().endswith(f"> {backlog_threshold(spec)}")
    assert backlog_threshold(spec) == (
        spec.autoscaling.max_replicas * spec.autoscaling.backlog_per_replica
    )
    age = per_queue(alert_rules, "CeleryQueueOldestTaskTooOld")[queue]["expr"]
    assert age.rstrip().endswith(f"> {oldest_age_slo_seconds(spec)}")
    duration = per_queue(alert_rules, "CeleryTaskNearHardTimeLimit")[queue]["expr"]
    assert duration.rstrip().endswith(f"> {duration_warning_seconds(spec):g}")
    assert duration_warning_seconds(spec) == pytest.approx(HARD_LIMIT_RATIO * spec.hard_time_limit)
    hpa = per_queue(alert_rules, "CeleryAutoscalerAtMaxReplicas")[queue]["expr"]
    hpa_name = autoscaler_name(queue)
    assert f'horizontalpodautoscaler=~"(?:keda-hpa-)?{hpa_name}"' in hpa
    for expr in (backlog, age, duration):
        assert f'queue="{queue}"' in expr


def test_every_alert_has_promtool_tests(
    alert_rules: list[dict[str, Any]], rule_tests: list[dict[str, Any]]
) -> None:
    # Given every alert_rule_test of every promtool test file
    checks: dict[str, list[list[Any]]] = {}
    for case in rule_tests:
        for check in case.get("alert_rule_test", []):
            checks.setdefault(check["alertname"], []).append(check.get("exp_alerts") or [])
    for name in {r["alert"] for r in alert_rules}:
        # Then each alert is tested firing and silent (before its for: or on healthy data)
        assert name in checks, f"{name} has no promtool test"
        assert any(checks[name]), f"{name}: no test where it fires"
        assert any(not alerts for alerts in checks[name]), f"{name}: no test where it is silent"


def test_promtool_tests_load_the_generated_rule_files() -> None:
    for path in sorted((REPO / "alerts" / "tests").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert "../celery-fleet.yaml" in text, f"{path.name} does not load the rules"
