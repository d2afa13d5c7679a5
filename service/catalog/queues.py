"""The queue catalog: every queue declared once; routing, infra, exporter, dashboards and
alerts all loop over it. Standard library only (and the service's error tree) so that any
tool can import it cheaply."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from service.errors import CatalogError

# Kubernetes object names derive from queue names (DNS-1123 after "_" -> "-"), and Redis keys
# and Prometheus label values use them verbatim, so keep them boring.
_QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ROUTING_KEY = re.compile(r"^[A-Za-z0-9_.*#-]{1,64}$")
_TASK_PATTERN = re.compile(r"^[A-Za-z0-9_.*]+$")


class Priority(IntEnum):
    """Message priority within one queue. On Redis, kombu pops LOWER numbers first, so 0 is
    the most urgent; every caller uses these names, never raw numbers. Each value is one of
    kombu's default ``priority_steps`` (0, 3, 6, 9), so each owns its own Redis sub-list."""

    URGENT = 0
    HIGH = 3
    NORMAL = 6
    LOW = 9


PRIORITY_STEPS: tuple[int, ...] = tuple(int(p) for p in Priority)


@dataclass(frozen=True)
class Autoscaling:
    """Defaults for the per-queue autoscaler; `Pulumi.<stack>.yaml` may override them."""

    min_replicas: int = 1
    max_replicas: int = 10
    # The HPA AverageValue target: waiting messages one replica is expected to absorb.
    backlog_per_replica: int = 20

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise CatalogError(f"min_replicas must be >= 0, got {self.min_replicas}")
        if self.max_replicas < 1:
            raise CatalogError(f"max_replicas must be >= 1, got {self.max_replicas}")
        if self.min_replicas > self.max_replicas:
            raise CatalogError(
                f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})"
            )
        if self.backlog_per_replica < 1:
            raise CatalogError(f"backlog_per_replica must be >= 1, got {self.backlog_per_replica}")


@dataclass(frozen=True)
class QueueSpec:
    """One Celery queue and how its workers run."""

    name: str
    exchange: str
    routing_key: str
    # Glob patterns of task names routed here by type (fnmatch syntax, as Celery's task_routes).
    task_patterns: tuple[str, ...] = ()
    supports_priority: bool = True
    concurrency: int = 4
    prefetch_multiplier: int = 1
    soft_time_limit: int = 60
    hard_time_limit: int = 90
    # The wait SLO: how long the oldest waiting message may sit before the queue counts as
    # not drained (CeleryQueueOldestTaskTooOld). A target for the queue's users, unrelated to
    # how long its tasks run: urgent queues wait least, whatever their time limits.
    max_wait_seconds: int = 300
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    description: str = ""

    def __post_init__(self) -> None:
        if not _QUEUE_NAME.match(self.name):
            raise CatalogError(
                f"queue name {self.name!r} must match {_QUEUE_NAME.pattern} "
                "(lowercase, digits, underscores; it becomes a Kubernetes name)"
            )
        if not _QUEUE_NAME.match(self.exchange):
            raise CatalogError(f"queue {self.name}: bad exchange name {self.exchange!r}")
        if not _ROUTING_KEY.match(self.routing_key):
            raise CatalogError(f"queue {self.name}: bad routing key {self.routing_key!r}")
        for pattern in self.task_patterns:
            if not _TASK_PATTERN.match(pattern):
                raise CatalogError(f"queue {self.name}: bad task pattern {pattern!r}")
        if not 1 <= self.concurrency <= 256:
            raise CatalogError(f"queue {self.name}: concurrency must be 1..256")
        if not 1 <= self.prefetch_multiplier <= 64:
            raise CatalogError(f"queue {self.name}: prefetch_multiplier must be 1..64")
        if self.soft_time_limit < 1:
            raise CatalogError(f"queue {self.name}: soft_time_limit must be >= 1 s")
        if self.hard_time_limit <= self.soft_time_limit:
            raise CatalogError(
                f"queue {self.name}: hard_time_limit ({self.hard_time_limit}s) must exceed "
                f"soft_time_limit ({self.soft_time_limit}s), or the soft limit never fires"
            )
        # Any waiting message has an age > 0: a target of 0 would page on every backlog.
        if self.max_wait_seconds < 1:
            raise CatalogError(f"queue {self.name}: max_wait_seconds must be >= 1 s")


class QueueCatalog:
    """An ordered, validated, read-only collection of queues."""

    def __init__(self, queues: tuple[QueueSpec, ...], default_queue: str) -> None:
        if not queues:
            raise CatalogError("the catalog needs at least one queue")
        seen: dict[str, QueueSpec] = {}
        for queue in queues:
            if queue.name in seen:
                raise CatalogError(f"duplicate queue name {queue.name!r}")
            seen[queue.name] = queue
        bindings = [(q.exchange, q.routing_key) for q in queues]
        if len(set(bindings)) != len(bindings):
            raise CatalogError("two queues share one exchange + routing key binding")
        owners: dict[str, str] = {}
        for queue in queues:
            for pattern in queue.task_patterns:
                if pattern in owners:
                    raise CatalogError(
                        f"task pattern {pattern!r} claimed by {owners[pattern]} and {queue.name}"
                    )
                owners[pattern] = queue.name
        if default_queue not in seen:
            raise CatalogError(f"default queue {default_queue!r} is not in the catalog")
        self._queues = seen
        self.default_queue = default_queue

    def __iter__(self) -> Iterator[QueueSpec]:
        return iter(self._queues.values())

    def __len__(self) -> int:
        return len(self._queues)

    def __contains__(self, name: object) -> bool:
        return name in self._queues

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def get(self, name: str) -> QueueSpec:
        try:
            return self._queues[name]
        except KeyError:
            raise CatalogError(
                f"unknown queue {name!r}; known queues: {', '.join(self._queues)}"
            ) from None

    def max_hard_time_limit(self) -> int:
        return max(q.hard_time_limit for q in self)


# Tasks whose payload exceeds this many bytes (the `data_size` kwarg) go to the heavy queue.
HEAVY_DATA_SIZE_BYTES = 1_000_000

CATALOG = QueueCatalog(
    (
        QueueSpec(
            name="default",
            exchange="default",
            routing_key="default",
            task_patterns=("service.tasks.diagnostics.*", "service.tasks.maintenance.*"),
            concurrency=4,
            prefetch_multiplier=4,
            soft_time_limit=60,
            hard_time_limit=90,
            max_wait_seconds=120,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=10, backlog_per_replica=50),
            description="General-purpose tasks and diagnostics",
        ),
        QueueSpec(
            name="high_priority",
            exchange="priority",
            routing_key="high",
            task_patterns=("service.tasks.reports.generate_urgent_report",),
            concurrency=4,
            prefetch_multiplier=1,
            soft_time_limit=120,
            hard_time_limit=150,
            max_wait_seconds=30,
            autoscaling=Autoscaling(min_replicas=2, max_replicas=20, backlog_per_replica=5),
            description="Time-sensitive work and premium-tier users",
        ),
        QueueSpec(
            name="low_priority",
            exchange="priority",
            routing_key="low",
            task_patterns=("service.tasks.reports.generate_monthly_report",),
            supports_priority=False,
            concurrency=2,
            prefetch_multiplier=1,
            soft_time_limit=600,
            hard_time_limit=660,
            max_wait_seconds=3600,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=4, backlog_per_replica=100),
            description="Background batch work that may wait",
        ),
        QueueSpec(
            name="email",
            exchange="default",
            routing_key="email",
            task_patterns=("service.tasks.email.*",),
            concurrency=8,  # I/O bound: waits on SMTP, not CPU
            prefetch_multiplier=4,
            soft_time_limit=30,
            hard_time_limit=45,
            max_wait_seconds=300,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=20, backlog_per_replica=100),
            description="Outgoing email through SMTP",
        ),
        QueueSpec(
            name="reports",
            exchange="reports",
            routing_key="reports",
            task_patterns=("service.tasks.reports.*",),
            concurrency=2,
            prefetch_multiplier=1,
            soft_time_limit=300,
            hard_time_limit=360,
            max_wait_seconds=900,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=6, backlog_per_replica=10),
            description="Report files",
        ),
        QueueSpec(
            name="analytics",
            exchange="analytics",
            routing_key="analytics",
            task_patterns=("service.tasks.analytics.*",),
            concurrency=2,  # CPU bound: one process per core
            prefetch_multiplier=1,
            soft_time_limit=300,
            hard_time_limit=360,
            max_wait_seconds=900,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=8, backlog_per_replica=20),
            description="CPU-heavy aggregation",
        ),
        QueueSpec(
            name="heavy_processing",
            exchange="heavy",
            routing_key="heavy",
            task_patterns=(),  # reached only through the dynamic router (data_size)
            supports_priority=False,
            concurrency=1,
            prefetch_multiplier=1,
            soft_time_limit=1500,
            hard_time_limit=1800,
            max_wait_seconds=3600,
            autoscaling=Autoscaling(min_replicas=1, max_replicas=4, backlog_per_replica=2),
            description="Large payloads, one at a time per worker",
        ),
    ),
    default_queue="default",
)
