"""Per-queue drill-down: one queue (the `queue` variable, options from the catalog) by task."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    VariableOption,
)

from dashboards import OVERVIEW_UID, QUEUE_UID
from dashboards.panels import (
    Query,
    base_dashboard,
    graph,
    row,
    selected_option,
    single_stat,
)
from dashboards.promql import exporter_gauge, kube_by_queue, only_queue, quantile, rate_sum, ratio
from service.catalog.queues import CATALOG

TITLE = "Celery fleet: queue"
QUEUE_VAR = "queue"
Q = 'queue="$queue"'

QUANTILES = (0.5, 0.95, 0.99)


def queue_variable() -> dash.CustomVariable:
    """A custom variable listing the catalog, so a queue with no traffic yet is selectable."""
    return (
        dash.CustomVariable(QUEUE_VAR)
        .label("Queue")
        .values(",".join(CATALOG.names))
        .options(
            [
                selected_option(name) if name == CATALOG.default_queue else _option(name)
                for name in CATALOG.names
            ]
        )
        .current(selected_option(CATALOG.default_queue))
    )


def _option(name: str) -> VariableOption:
    return VariableOption(selected=False, text=name, value=name)


def _hpa(metric: str) -> str:
    return only_queue(kube_by_queue(metric, "horizontalpodautoscaler"), "$queue")


def build() -> dash.Dashboard:
    return (
        base_dashboard(TITLE, QUEUE_UID)
        .with_variable(queue_variable())
        .link(
            dash.DashboardLink("Fleet overview")
            .type(DashboardLinkType.LINK)
            .url(f"/d/{OVERVIEW_UID}")
            .icon("dashboard")
            .keep_time(True)
        )
        .with_row(row("Queue $queue"))
        .with_panel(single_stat("Waiting tasks", exporter_gauge("celery_queue_length", Q)))
        .with_panel(
            single_stat(
                "Oldest waiting task",
                exporter_gauge("celery_queue_oldest_task_age_seconds", Q),
                unit="s",
            )
        )
        .with_panel(single_stat("Dead-letter entries", exporter_gauge("celery_dlq_length", Q)))
        .with_panel(single_stat("Active tasks", f"sum(celery_active_tasks{{{Q}}})"))
        .with_panel(
            single_stat(
                "Tasks started /s", rate_sum("celery_task_started_total", (), Q), unit="ops"
            )
        )
        .with_panel(
            single_stat(
                "Failure ratio",
                ratio("celery_task_failed_total", "celery_task_started_total", (), Q),
                unit="percentunit",
            )
        )
        .with_row(row("Tasks"))
        .with_panel(
            graph(
                "Task outcomes /s",
                [
                    Query(rate_sum(f"celery_task_{outcome}_total", (), Q), outcome)
                    for outcome in ("started", "succeeded", "failed", "retried")
                ],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Failure ratio by task",
                [
                    Query(
                        ratio(
                            "celery_task_failed_total",
                            "celery_task_started_total",
                            ("task_name",),
                            Q,
                        ),
                        "{{task_name}}",
                    )
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Failures /s by task and exception",
                [
                    Query(
                        rate_sum("celery_task_failed_total", ("task_name", "exception"), Q),
                        "{{task_name}} {{exception}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Retries /s by task",
                [Query(rate_sum("celery_task_retried_total", ("task_name",), Q), "{{task_name}}")],
                unit="ops",
            )
        )
        .with_row(row("Latency"))
        .with_panel(
            graph(
                "Task duration p50 / p95 / p99",
                [
                    Query(quantile(q, "celery_task_duration_seconds", (), Q), f"p{q * 100:g}")
                    for q in QUANTILES
                ],
                unit="s",
                description="The hard time limit of each queue is in "
                "service/catalog/queues.py; the CeleryTaskNearHardTimeLimit alert fires at 80% "
                "of it (p99).",
            )
        )
        .with_panel(
            graph(
                "Task duration p95 by task",
                [
                    Query(
                        quantile(0.95, "celery_task_duration_seconds", ("task_name",), Q),
                        "{{task_name}}",
                    )
                ],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Queue wait p50 / p95 / p99",
                [
                    Query(quantile(q, "celery_task_queue_wait_seconds", (), Q), f"p{q * 100:g}")
                    for q in QUANTILES
                ],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Dead-lettered /s by task and reason",
                [
                    Query(
                        rate_sum("celery_task_dead_lettered_total", ("task_name", "reason"), Q),
                        "{{task_name}} {{reason}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_row(row("Backlog and workers"))
        .with_panel(
            graph(
                "Queue length",
                [Query(exporter_gauge("celery_queue_length", Q), "waiting")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Oldest waiting task age",
                [Query(exporter_gauge("celery_queue_oldest_task_age_seconds", Q), "oldest")],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Dead-letter queue length",
                [Query(exporter_gauge("celery_dlq_length", Q), "entries")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Active tasks by task",
                [Query(f"sum by (task_name) (celery_active_tasks{{{Q}}})", "{{task_name}}")],
            )
        )
        .with_panel(
            graph(
                "Worker replicas: desired vs current (kube-state-metrics)",
                [
                    Query(_hpa("kube_horizontalpodautoscaler_status_desired_replicas"), "desired"),
                    Query(_hpa("kube_horizontalpodautoscaler_status_current_replicas"), "current"),
                    Query(_hpa("kube_horizontalpodautoscaler_spec_max_replicas"), "max"),
                    Query(
                        only_queue(
                            kube_by_queue(
                                "kube_deployment_status_replicas_available", "deployment"
                            ),
                            "$queue",
                        ),
                        "available",
                    ),
                ],
            )
        )
    )
