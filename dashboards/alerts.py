"""Prometheus alert rules for the fleet. Per-queue thresholds are derived from a catalog:
a rule is generated per queue where they differ, so each rule shows its own number.

The committed alerts/celery-fleet.yaml renders the catalog's defaults (`CATALOG`); each
Pulumi stack deploys the same rules rendered from its resolved catalog (`FleetConfig.catalog`,
its own replicas and backlog targets), so its alerts agree with its autoscalers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from dashboards import OVERVIEW_UID, QUEUE_UID
from dashboards.promql import KEDA_HPA, exporter_gauge, quantile, rate_sum, ratio
from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG, QueueCatalog, QueueSpec

RULES_FILE = "alerts/celery-fleet.yaml"

# Fleet-wide: failed executions over started executions.
FAILURE_RATIO = 0.05
# Warn when the p99 duration of a task reaches this fraction of its queue's hard time limit.
HARD_LIMIT_RATIO = 0.8

Severity = Literal["warning", "critical"]

# Alerts keep the namespace: two fleets scraped by one Prometheus must not mask each other.
BY_QUEUE = ("namespace", "queue")
ON_QUEUE = "on (namespace, queue)"


def backlog_threshold(queue: QueueSpec) -> int:
    """Waiting messages the autoscaler absorbs at its maximum: max replicas x backlog per
    replica of the catalog given (the defaults, or a stack's resolved values)."""
    return queue.autoscaling.max_replicas * queue.autoscaling.backlog_per_replica


def oldest_age_slo_seconds(queue: QueueSpec) -> int:
    """The queue's wait SLO from the catalog. Not derived from its time limits: how long a
    task may run says nothing about how long its callers may wait."""
    return queue.max_wait_seconds


def duration_warning_seconds(queue: QueueSpec) -> float:
    return HARD_LIMIT_RATIO * queue.hard_time_limit


def queue_dashboard(queue: str) -> str:
    return f"/d/{QUEUE_UID}?var-queue={queue}"


OVERVIEW = f"/d/{OVERVIEW_UID}"
QUEUE_OF_ALERT = queue_dashboard("{{ $labels.queue }}")


def _on(queue: QueueSpec) -> str:
    return f'queue="{queue.name}"'


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: Severity
    summary: str
    description: str
    runbook: str
    dashboard: str
    for_: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def to_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": _Block(self.expr)}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **dict(self.labels)}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook": self.runbook,
            "dashboard": self.dashboard,
        }
        return rule


def _task_alerts(catalog: QueueCatalog) -> Iterator[Alert]:
    failure_ratio = ratio(
        "celery_task_failed_total", "celery_task_started_total", BY_QUEUE, window="5m"
    )
    yield Alert(
        name="CeleryTaskFailureRateHigh",
        expr=f"(\n{failure_ratio}\n) > {FAILURE_RATIO:g}",
        for_="10m",
        severity="warning",
        summary="Queue {{ $labels.queue }}: {{ $value | humanizePercentage }} of task runs fail",
        description=f"More than {FAILURE_RATIO:.0%} of the task runs on queue "
        "{{ $labels.queue }} raised (retried runs included) over the last 5 minutes, "
        "for 10 minutes.",
        runbook="Open the queue dashboard (failures by task and exception) and the worker logs "
        "of that queue. A new exception after a deploy: roll back. A dependency error (SMTP, "
        "database): fix or wait for it, then replay the dead letters with `fleet dlq replay`.",
        dashboard=QUEUE_OF_ALERT,
    )
    for queue in catalog:
        limit = duration_warning_seconds(queue)
        p99 = quantile(
            0.99, "celery_task_duration_seconds", (*BY_QUEUE, "task_name"), _on(queue), "15m"
        )
        yield Alert(
            name="CeleryTaskNearHardTimeLimit",
            expr=f"{p99} > {limit:g}",
            for_="15m",
            severity="warning",
            summary=f"Queue {queue.name}: task {{{{ $labels.task_name }}}} runs close to its "
            "hard time limit",
            description=f"p99 duration of {{{{ $labels.task_name }}}} on queue {queue.name} is "
            f"{{{{ $value | humanizeDuration }}}}, over {HARD_LIMIT_RATIO:.0%} of the "
            f"queue's hard time limit ({queue.hard_time_limit}s); tasks past it are killed.",
            runbook="Check the task's input sizes and its dependencies' latency on the queue "
            "dashboard. Make the task faster or split it; route large payloads to "
            "heavy_processing; raise the time limits in service/catalog/queues.py only knowingly.",
            dashboard=queue_dashboard(queue.name),
            labels=(("queue", queue.name),),
        )
    dead_lettered = rate_sum(
        "celery_task_dead_lettered_total", BY_QUEUE, window="10m", func="increase"
    )
    dlq_growth = exporter_gauge("delta(celery_dlq_length[10m])", by=BY_QUEUE)
    yield Alert(
        name="CeleryDeadLetterQueueReceiving",
        # The worker counter sees each dead-letter at once; the exporter gauge also catches the
        # first one after a worker start, which a counter born at 1 cannot show as an increase.
        expr=f"{dead_lettered} > 0\nor\n{dlq_growth} > 0",
        severity="warning",
        summary="Queue {{ $labels.queue }}: tasks are being dead-lettered",
        description="Tasks of queue {{ $labels.queue }} went to the dead-letter queue in the "
        "last 10 minutes (permanent error or retries exhausted).",
        runbook="Inspect the entries of the queue with `fleet dlq list` and `fleet dlq show`; "
        "fix the cause, then `fleet dlq replay`; purge only entries that must never run.",
        dashboard=QUEUE_OF_ALERT,
    )

    # The worker creates the series at 0 for its queues at start, so the first parking is an
    # increase; it fires at once and for an hour after the last one.
    parked = rate_sum("celery_dlq_parked_total", BY_QUEUE, window="1h", func="increase")
    yield Alert(
        name="CeleryDeadLetterParked",
        expr=f"{parked} > 0",
        severity="critical",
        summary="Queue {{ $labels.queue }}: messages parked, the DLQ refused their entries",
        description="The dead-letter queue refused every form of an entry of queue "
        "{{ $labels.queue }} in the last hour (a foreign value at its DLQ keys, an id held by "
        "other tasks); the message is parked in fleet:dlq:parked and not run again.",
        runbook="Run `fleet dlq parked` to see the messages and the Redis error; fix the key "
        "it names (delete or rename the foreign value), then re-send the messages or HDEL "
        "them from fleet:dlq:parked.",
        dashboard=QUEUE_OF_ALERT,
    )

    redelivered = rate_sum(
        "celery_task_redelivered_total",
        (*BY_QUEUE, "reason"),
        'reason=~"dead_worker|visibility_timeout"',
        window="15m",
        func="increase",
    )
    yield Alert(
        name="CeleryTasksRedelivered",
        # Shutdown returns are routine (every rollout); dead workers' and VT returns are not.
        expr=f"{redelivered} > 0",
        severity="warning",
        summary="Queue {{ $labels.queue }}: tasks redelivered ({{ $labels.reason }})",
        description="Messages of queue {{ $labels.queue }} were put back into the queue in the "
        "last 15 minutes because their worker died (dead_worker: no heartbeat for the "
        "dead-owner timeout) or from kombu's global unacked records (visibility_timeout). "
        "They run again; a task that was running when its worker died runs a second time.",
        runbook="Find the dead workers: pod restarts, OOMKilled or evicted pods, node loss. "
        "dead_worker after a SIGKILL is expected once; repeated ones: raise the memory limit, "
        "lower max_memory_per_child, or look for a task that crashes its process. "
        "visibility_timeout: a stock kombu client or the previous release still consumes.",
        dashboard=QUEUE_OF_ALERT,
    )


def _queue_alerts(catalog: QueueCatalog) -> Iterator[Alert]:
    for queue in catalog:
        threshold = backlog_threshold(queue)
        yield Alert(
            name="CeleryQueueBacklogHigh",
            expr=f"{exporter_gauge('celery_queue_length', _on(queue), BY_QUEUE)} > {threshold}",
            for_="15m",
            severity="warning",
            summary=f"Queue {queue.name}: {{{{ $value }}}} tasks waiting",
            description=f"Queue {queue.name} has had more than {threshold} waiting tasks "
            f"(maxReplicas {queue.autoscaling.max_replicas} x backlogPerReplica "
            f"{queue.autoscaling.backlog_per_replica}) for 15 minutes.",
            runbook="Check replicas desired vs current and the task rate on the queue "
            "dashboard. Pods pending: add cluster capacity. Replicas at max: raise "
            f"queues.{queue.name}.maxReplicas in Pulumi.<stack>.yaml. Throughput fell: look "
            "for a slow dependency.",
            dashboard=queue_dashboard(queue.name),
            labels=(("queue", queue.name),),
        )
    for queue in catalog:
        slo = oldest_age_slo_seconds(queue)
        oldest = exporter_gauge("celery_queue_oldest_task_age_seconds", _on(queue), BY_QUEUE)
        yield Alert(
            name="CeleryQueueOldestTaskTooOld",
            expr=f"{oldest} > {slo}",
            for_="5m",
            severity="critical",
            summary=f"Queue {queue.name}: oldest task waited {{{{ $value | humanizeDuration }}}}",
            description=f"The oldest waiting task of queue {queue.name} is older than {slo}s "
            "(its max_wait_seconds in the queue catalog), for 5 minutes.",
            runbook="Workers are not keeping up or not consuming: check active tasks, replicas "
            "and worker logs on the queue dashboard; scale the worker Deployment by hand if "
            "the autoscaler is stuck.",
            dashboard=queue_dashboard(queue.name),
            labels=(("queue", queue.name),),
        )
    started = rate_sum("celery_task_started_total", BY_QUEUE, window="10m")
    yield Alert(
        name="CeleryQueueNoConsumers",
        # Busy workers on long tasks start nothing for minutes: active tasks count as consuming.
        expr=f"{exporter_gauge('celery_queue_length', by=BY_QUEUE)} > 0\n"
        f"unless {ON_QUEUE} {started} > 0\n"
        f"unless {ON_QUEUE} sum by (namespace, queue) (celery_active_tasks) > 0",
        for_="10m",
        severity="critical",
        summary="Queue {{ $labels.queue }} has a backlog and nobody consumes it",
        description="Queue {{ $labels.queue }} has {{ $value }} waiting tasks, but no worker "
        "started or ran a task of it for 10 minutes.",
        runbook="Check the worker Deployment of the queue: replicas (0?), CrashLoopBackOff, "
        "broker connection errors in the logs, and that the workers run `-Q <queue>`.",
        dashboard=QUEUE_OF_ALERT,
    )


def _exporter_alerts() -> Iterator[Alert]:
    yield Alert(
        name="CeleryExporterDown",
        expr="celery_exporter_up == 0\nor\nabsent(celery_exporter_up)",
        for_="5m",
        severity="critical",
        summary="The celery queue exporter is down or not scraped",
        description="celery_exporter_up is 0 (the exporter cannot read Redis) or absent (it "
        "is not scraped) for 5 minutes. Queue alerts and the autoscalers are blind meanwhile.",
        runbook="Check the exporter pod (logs, restarts), its Redis URL and Redis itself, and "
        "that its PodMonitor/ServiceMonitor selects it in Prometheus' targets page.",
        dashboard=OVERVIEW,
    )


def _autoscaling_alerts(catalog: QueueCatalog) -> Iterator[Alert]:
    for queue in catalog:
        name = worker_deployment_name(queue.name)
        hpa = f'horizontalpodautoscaler=~"{KEDA_HPA}{name}"'
        yield Alert(
            name="CeleryAutoscalerAtMaxReplicas",
            expr=f"max by (namespace, horizontalpodautoscaler) "
            f"(kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}})\n"
            f">= on (namespace, horizontalpodautoscaler) max by (namespace, "
            f"horizontalpodautoscaler) (kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}})",
            for_="15m",
            severity="warning",
            summary=f"Queue {queue.name}: worker autoscaler pinned at max replicas",
            description=f"The autoscaler of queue {queue.name} has run at its maximum of "
            "replicas for 15 minutes; a growing backlog will not be absorbed.",
            runbook=f"If the backlog grows, raise queues.{queue.name}.maxReplicas in "
            "Pulumi.<stack>.yaml (mind cluster capacity and Redis connections); if the "
            "backlog is flat, the workers are slow: see task duration on the queue dashboard.",
            dashboard=queue_dashboard(queue.name),
            labels=(("queue", queue.name),),
        )


def _metric_missing_alerts(catalog: QueueCatalog) -> Iterator[Alert]:
    """The autoscalers' input is gone: both modes then hold the pool at its current count
    (never down, but never up either: a growing backlog goes unserved and unseen)."""
    for queue in catalog:
        series = f'celery_queue_length{{queue="{queue.name}"}}'
        yield Alert(
            name="CeleryAutoscalerMetricMissing",
            # Missing in a namespace whose exporter is scraped (up or not: Redis down), or,
            # with no exporter scraped anywhere, missing altogether.
            expr="(group by (namespace) (celery_exporter_up)\n"
            f" unless on (namespace) group by (namespace) ({series}))\n"
            f"or\n(absent({series}) unless on () group(celery_exporter_up))",
            for_="5m",
            severity="warning",
            summary=f"Queue {queue.name}: its autoscaler has no queue length",
            description=f"celery_queue_length for queue {queue.name} has been missing for 5 "
            "minutes. Its autoscaler holds the current replica count (it never scales down on a "
            "missing metric, nor up): a backlog may grow unserved and unalerted.",
            runbook="Check the exporter (CeleryExporterDown), Redis and Prometheus' target for "
            "the exporter; an exporter image older than the catalog does not know a new queue. "
            "Scale the worker Deployment by hand if a backlog builds meanwhile.",
            dashboard=queue_dashboard(queue.name),
            labels=(("queue", queue.name),),
        )


def rule_groups(catalog: QueueCatalog = CATALOG) -> list[dict[str, Any]]:
    groups = {
        "celery-fleet.tasks": _task_alerts(catalog),
        "celery-fleet.queues": _queue_alerts(catalog),
        "celery-fleet.exporter": _exporter_alerts(),
        "celery-fleet.autoscaling": _chain(
            _autoscaling_alerts(catalog), _metric_missing_alerts(catalog)
        ),
    }
    return [
        {"name": name, "rules": [a.to_rule() for a in alerts]} for name, alerts in groups.items()
    ]


def _chain(*parts: Iterator[Alert]) -> Iterator[Alert]:
    for part in parts:
        yield from part


class _Block(str):
    """A string dumped in YAML block style (PromQL reads as written, never folded)."""


class _Dumper(yaml.SafeDumper):
    pass


def _block(dumper: yaml.SafeDumper, data: _Block) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


_Dumper.add_representer(_Block, _block)

HEADER = (
    "# Generated by `python -m dashboards.generate` from service/catalog/queues.py: do not edit.\n"
    "# Tests: alerts/tests/*.yaml (promtool test rules).\n"
)


def render_rules(catalog: QueueCatalog = CATALOG) -> str:
    """The rule file for `catalog`: the committed one for the defaults, a stack's for its own."""
    body = yaml.dump(
        {"groups": rule_groups(catalog)},
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
    )
    return HEADER + body
