"""Worker task metrics. Their names and labels are a contract: the dashboards and alerts
(dashboards/) query them by name.

Tasks run in prefork children, so the worker runs prometheus_client in multiprocess mode:
`fleet worker` sets and wipes PROMETHEUS_MULTIPROC_DIR before Celery starts, each process
writes its own files, and the main process serves the merged view."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from service.catalog.queues import CATALOG
from service.task_names import task_label

LABELS = ("queue", "task_name")

# Seconds: from a no-op (ms) up to the longest hard time limit in the catalog, the longest
# any task can run; the top bucket follows the catalog when a limit changes.
_LADDER = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)
_LONGEST_RUN = CATALOG.max_hard_time_limit()
DURATION_BUCKETS: tuple[float, ...] = (*(b for b in _LADDER if b < _LONGEST_RUN), _LONGEST_RUN)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

STARTED = Counter("celery_task_started", "Tasks that started running.", LABELS)
SUCCEEDED = Counter("celery_task_succeeded", "Tasks that returned normally.", LABELS)
FAILED = Counter(
    "celery_task_failed", "Task runs that raised (retries included).", (*LABELS, "exception")
)
RETRIED = Counter("celery_task_retried", "Retries scheduled.", LABELS)
DEAD_LETTERED = Counter(
    "celery_task_dead_lettered", "Messages written to the dead-letter queue.", (*LABELS, "reason")
)
EXPIRED = Counter(
    "celery_task_expired",
    "Messages whose expiry passed before they ran (dead-lettered, or dropped when "
    "FLEET_DLQ_EXPIRED is false).",
    LABELS,
)
DURATION = Histogram(
    "celery_task_duration_seconds", "Task run time.", LABELS, buckets=DURATION_BUCKETS
)
QUEUE_WAIT = Histogram(
    "celery_task_queue_wait_seconds",
    "Time from publish (or ETA) to start.",
    LABELS,
    buckets=WAIT_BUCKETS,
)
# livesum: the sum over live processes; a dead child's value is dropped with its files.
ACTIVE = Gauge("celery_active_tasks", "Tasks running now.", LABELS, multiprocess_mode="livesum")


# Redelivery: messages the transport put back into their queue (service.transport).
REDELIVERY_REASONS = ("dead_worker", "visibility_timeout", "shutdown")
REDELIVERED = Counter(
    "celery_task_redelivered",
    "Messages put back into their queue: a dead consumer's (dead_worker), kombu's global "
    "records after the visibility timeout (visibility_timeout), a worker's prefetched "
    "messages at warm shutdown (shutdown).",
    ("queue", "reason"),
)
# From the owner's last heartbeat to the restore: dead-owner timeout plus at most one sweep.
REDELIVERY_DELAY_BUCKETS = (1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 90, 120, 300, 600, 3600)
REDELIVERY_DELAY = Histogram(
    "celery_task_redelivery_delay_seconds",
    "Time from a dead consumer's last heartbeat to the restore of its messages.",
    ("queue",),
    buckets=REDELIVERY_DELAY_BUCKETS,
)


class TaskMetrics:
    """The one place that turns task events into metric updates."""

    def initialise(self, label_sets: Iterable[tuple[str, str]]) -> None:
        """Create the (queue, task_name) series at 0, so a panel shows 0 rather than "No data"
        before the first event. Only label sets known in advance: `exception` and `reason`
        take open values and appear with their first event."""
        for queue, task_name in label_sets:
            for metric in (STARTED, SUCCEEDED, RETRIED, ACTIVE):
                metric.labels(queue, task_name)
            for reason in REDELIVERY_REASONS:
                REDELIVERED.labels(queue, reason)
            REDELIVERY_DELAY.labels(queue)

    def started(self, queue: str, task_name: str, wait_seconds: float | None) -> None:
        STARTED.labels(queue, task_name).inc()
        ACTIVE.labels(queue, task_name).inc()
        if wait_seconds is not None and wait_seconds >= 0:
            QUEUE_WAIT.labels(queue, task_name).observe(wait_seconds)

    def finished(self, queue: str, task_name: str, duration: float | None) -> None:
        ACTIVE.labels(queue, task_name).dec()
        if duration is not None:
            DURATION.labels(queue, task_name).observe(duration)

    def succeeded(self, queue: str, task_name: str) -> None:
        SUCCEEDED.labels(queue, task_name).inc()

    def failed(self, queue: str, task_name: str, exception: str) -> None:
        FAILED.labels(queue, task_name, exception).inc()

    def retried(self, queue: str, task_name: str) -> None:
        RETRIED.labels(queue, task_name).inc()

    def expired(self, queue: str, task_name: str) -> None:
        EXPIRED.labels(queue, task_label(task_name)).inc()

    def dead_lettered(self, queue: str, task_name: str, reason: str) -> None:
        # Poison names come from senders: unregistered ones share one label.
        DEAD_LETTERED.labels(queue, task_label(task_name), reason).inc()


task_metrics = TaskMetrics()


def redelivered(queue: str, reason: str, count: int, delay: float | None = None) -> None:
    """Count `count` messages of `queue` put back for `reason` (one of REDELIVERY_REASONS)."""
    # Only catalog queues are labels (a reply or stray queue would add series).
    label = queue if queue in CATALOG else "other"
    REDELIVERED.labels(label, reason).inc(count)
    if delay is not None:
        for _ in range(count):
            REDELIVERY_DELAY.labels(label).observe(max(delay, 0.0))
