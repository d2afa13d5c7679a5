"""Every metric the dashboards and alerts read is a contract name (one the service defines) or a
kube-state-metrics series: a typo would be an empty panel or an alert that never fires."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboards.expressions import all_panel_expressions

# The contract, typed here on purpose rather than imported: the test holds the code to it.
WORKER_COUNTERS = {
    "celery_task_started_total",
    "celery_task_succeeded_total",
    "celery_task_failed_total",
    "celery_task_retried_total",
    "celery_task_dead_lettered_total",
    "celery_dlq_parked_total",
    "celery_task_redelivered_total",
}
WORKER_HISTOGRAMS = {
    "celery_task_duration_seconds",
    "celery_task_queue_wait_seconds",
    "celery_task_redelivery_delay_seconds",
}
WORKER_GAUGES = {"celery_active_tasks"}
EXPORTER = {
    "celery_queue_length",
    "celery_queue_oldest_task_age_seconds",
    "celery_dlq_length",
    "celery_queue_live_consumers",
    "celery_exporter_up",
    "celery_exporter_errors_total",
}
KUBE_STATE_METRICS = {
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_deployment_status_replicas_available",
}
ALLOWED = (
    WORKER_COUNTERS
    | WORKER_GAUGES
    | EXPORTER
    | KUBE_STATE_METRICS
    | {f"{h}{suffix}" for h in WORKER_HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

PROMQL_WORDS = {
    # functions
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "idelta", "increase", "irate", "label_join", "label_replace", "ln",
    "max_over_time", "min_over_time", "predict_linear", "rate", "resets", "round", "scalar",
    "sort", "sort_desc", "sum_over_time", "time", "timestamp", "vector",
    # aggregations and keywords
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers left after removing strings, label
    matchers, grouping label lists, range durations, numbers and PromQL's own words."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    words = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", text)
    return {w for w in words if w.lower() not in PROMQL_WORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (queue) (rate(a{queue="x"}[5m])) / sum(rate(b_total[1m]))', {"a", "b_total"}),
        ('histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 1.5e3', {"h_bucket"}),
        ('x > 0 unless on (queue) y > 0 or absent(up)', {"x", "y", "up"}),
        ('label_replace(k{a=~"b-.+"}, "queue", "$1", "a", "b-(.+)")', {"k"}),
    ],
)  # fmt: skip
def test_metric_names_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_dashboards_read_only_contract_metrics() -> None:
    for title, expr, needs_ksm in all_panel_expressions():
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        assert names <= ALLOWED, f"{title}: unknown metrics {names - ALLOWED}"
        assert needs_ksm == bool(names & KUBE_STATE_METRICS), title


def test_alerts_read_only_contract_metrics(alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric"
        assert names <= ALLOWED, f"{rule['alert']}: unknown metrics {names - ALLOWED}"


def test_every_contract_metric_is_shown_somewhere() -> None:
    # Not strictly required, but a contract metric nobody looks at is worth noticing.
    seen = set().union(*(metric_names(e) for _, e, _ in all_panel_expressions()))
    unused = ALLOWED - seen
    unused -= {f"{h}{s}" for h in WORKER_HISTOGRAMS for s in ("_sum", "_count")}
    assert not unused
