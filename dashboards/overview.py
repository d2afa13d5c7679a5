"""The fleet overview: every queue on one screen."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models.dashboard import DashboardLinkType

from dashboards import OVERVIEW_UID, QUEUE_UID
from dashboards.panels import Query, base_dashboard, graph, row, single_stat
from dashboards.promql import exporter_gauge, kube_by_queue, quantile, rate_sum, ratio

TITLE = "Celery fleet: overview"

QUANTILES = (0.5, 0.95, 0.99)


def build() -> dash.Dashboard:
    return (
        base_dashboard(TITLE, OVERVIEW_UID)
        .link(
            dash.DashboardLink("Queue drill-down")
            .type(DashboardLinkType.LINK)
            .url(f"/d/{QUEUE_UID}")
            .icon("dashboard")
            .keep_time(True)
        )
        .with_row(row("Fleet at a glance"))
        .with_panel(single_stat("Tasks started /s", rate_sum("celery_task_started_total", ())))
        .with_panel(
            single_stat(
                "Failure ratio",
                ratio("celery_task_failed_total", "celery_task_started_total", ()),
                unit="percentunit",
            )
        )
        .with_panel(single_stat("Waiting tasks", f"sum({exporter_gauge('celery_queue_length')})"))
        .with_panel(
            single_stat(
                "Oldest waiting task",
                f"max({exporter_gauge('celery_queue_oldest_task_age_seconds')})",
                unit="s",
            )
        )
        .with_panel(
            single_stat("Dead-letter entries", f"sum({exporter_gauge('celery_dlq_length')})")
        )
        .with_panel(
            single_stat(
                "Exporter up",
                "min(celery_exporter_up)",
                description="1 when the queue exporter reaches Redis; no data when it is not "
                "scraped at all (the CeleryExporterDown alert covers both).",
            )
        )
        .with_row(row("Throughput and failures"))
        .with_panel(
            graph(
                "Tasks succeeded /s by queue",
                [Query(rate_sum("celery_task_succeeded_total"), "{{queue}}")],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Failure ratio by queue",
                [
                    Query(
                        ratio("celery_task_failed_total", "celery_task_started_total"), "{{queue}}"
                    )
                ],
                unit="percentunit",
                description="Runs that raised (retries included) over runs started.",
            )
        )
        .with_panel(
            graph(
                "Retries /s by queue",
                [Query(rate_sum("celery_task_retried_total"), "{{queue}}")],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Dead-lettered /s by queue and reason",
                [
                    Query(
                        rate_sum("celery_task_dead_lettered_total", ("queue", "reason")),
                        "{{queue}} {{reason}}",
                    ),
                    # The last resort: messages no DLQ entry could hold (service.dlq.parking).
                    Query(rate_sum("celery_dlq_parked_total", ("queue",)), "{{queue}} parked"),
                ],
                unit="ops",
            )
        )
        .with_panel(
            graph(
                "Redelivered /s by queue and reason",
                [
                    Query(
                        rate_sum("celery_task_redelivered_total", ("queue", "reason")),
                        "{{queue}} {{reason}}",
                    ),
                ],
                unit="ops",
                description="Messages put back into their queue: a dead worker's (no heartbeat "
                "for the dead-owner timeout), kombu's global records after the visibility "
                "timeout, prefetched messages at warm shutdown.",
            )
        )
        .with_panel(
            graph(
                "Dead worker to redelivery p99, and live consumers",
                [
                    Query(
                        quantile(0.99, "celery_task_redelivery_delay_seconds"),
                        "{{queue}} delay p99 (s)",
                    ),
                    Query(exporter_gauge("celery_queue_live_consumers"), "{{queue}} consumers"),
                ],
                description="Seconds from a dead worker's last heartbeat to the restore of its "
                "messages (bounded by the dead-owner timeout plus one sweep), and the worker "
                "connections consuming each queue with a fresh heartbeat.",
            )
        )
        .with_row(row("Latency"))
        .with_panel(
            graph(
                "Task duration p50 / p95 / p99 by queue",
                [
                    Query(
                        quantile(q, "celery_task_duration_seconds"), f"{{{{queue}}}} p{q * 100:g}"
                    )
                    for q in QUANTILES
                ],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Queue wait p50 / p95 / p99 by queue",
                [
                    Query(
                        quantile(q, "celery_task_queue_wait_seconds"), f"{{{{queue}}}} p{q * 100:g}"
                    )
                    for q in QUANTILES
                ],
                unit="s",
                description="Time from publish to a worker starting the task.",
            )
        )
        .with_row(row("Queues"))
        .with_panel(
            graph(
                "Queue length by queue",
                [Query(exporter_gauge("celery_queue_length"), "{{queue}}")],
                width=8,
                description="Waiting messages, all priority sub-lists summed.",
            )
        )
        .with_panel(
            graph(
                "Oldest waiting task age by queue",
                [Query(exporter_gauge("celery_queue_oldest_task_age_seconds"), "{{queue}}")],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Dead-letter queue length by queue",
                [Query(exporter_gauge("celery_dlq_length"), "{{queue}}")],
                width=8,
            )
        )
        .with_row(row("Workers and autoscaling"))
        .with_panel(
            graph(
                "Active tasks by queue",
                [Query("sum by (queue) (celery_active_tasks)", "{{queue}}")],
            )
        )
        .with_panel(
            graph(
                "Exporter errors /s",
                [Query("sum(rate(celery_exporter_errors_total[$__rate_interval]))", "errors")],
                unit="ops",
                description="Failed Redis reads of the queue exporter; its gauges go stale.",
            )
        )
        .with_panel(
            graph(
                "Worker replicas: desired vs current (kube-state-metrics)",
                [
                    Query(
                        kube_by_queue(
                            "kube_horizontalpodautoscaler_status_desired_replicas",
                            "horizontalpodautoscaler",
                        ),
                        "{{queue}} desired",
                    ),
                    Query(
                        kube_by_queue(
                            "kube_horizontalpodautoscaler_status_current_replicas",
                            "horizontalpodautoscaler",
                        ),
                        "{{queue}} current",
                    ),
                    Query(
                        kube_by_queue(
                            "kube_horizontalpodautoscaler_spec_max_replicas",
                            "horizontalpodautoscaler",
                        ),
                        "{{queue}} max",
                    ),
                    Query(
                        kube_by_queue("kube_deployment_status_replicas_available", "deployment"),
                        "{{queue}} available",
                    ),
                ],
                width=24,
            )
        )
    )
