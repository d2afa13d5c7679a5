"""Queue routing, derived from the catalog.

Order of precedence (first match wins):
1. call-time `apply_async(queue=...)`: Celery merges it over any route we return;
2. the dynamic router: premium users -> high_priority, large payloads -> heavy_processing;
3. pattern routes by task name: exact names before globs, so
   `reports.generate_urgent_report` beats `reports.*`;
4. the catalog's default queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from kombu import Exchange, Queue

from service.catalog.queues import CATALOG, HEAVY_DATA_SIZE_BYTES, QueueCatalog
from service.errors import RoutingError

PREMIUM_TIER = "premium"
PREMIUM_QUEUE = "high_priority"
HEAVY_QUEUE = "heavy_processing"


def build_task_queues(catalog: QueueCatalog = CATALOG) -> tuple[Queue, ...]:
    exchanges: dict[str, Exchange] = {}
    queues = []
    for spec in catalog:
        exchange = exchanges.setdefault(spec.exchange, Exchange(spec.exchange, type="direct"))
        queues.append(Queue(spec.name, exchange=exchange, routing_key=spec.routing_key))
    return tuple(queues)


def _destination(queue: str, catalog: QueueCatalog) -> dict[str, str]:
    # Only the queue: an exchange/routing key here would survive a call-time `queue=`
    # override (Celery merges options key by key) and silently send it to our queue instead.
    return {"queue": catalog.get(queue).name}


def tasks_served(
    queue: str, task_names: Iterable[str], catalog: QueueCatalog = CATALOG
) -> list[str]:
    """The tasks a worker of `queue` runs: those routed there by name (the default queue
    takes the unmatched ones). A queue without task patterns is reached through the dynamic
    router, which may send it any task."""
    names = sorted(task_names)
    spec = catalog.get(queue)
    if not spec.task_patterns and queue != catalog.default_queue:
        return names
    router = CatalogRouter(catalog)
    return [n for n in names if (router.queue_for(n) or catalog.default_queue) == queue]


def check_priority(priority: object) -> None:
    if priority is None:
        return
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise RoutingError(
            "priority must be an int 0..9 (0 = most urgent; use service.catalog.queues.Priority), "
            f"got {priority!r}"
        )


def _pattern_rank(pattern: str) -> tuple[bool, int]:
    # Exact names first, then longer (more specific) globs.
    return ("*" in pattern or "?" in pattern, -len(pattern))


class CatalogRouter:
    """A Celery router (`task_routes = (CatalogRouter(),)`) built from the catalog."""

    def __init__(
        self,
        catalog: QueueCatalog = CATALOG,
        heavy_threshold: int = HEAVY_DATA_SIZE_BYTES,
    ) -> None:
        for name in (PREMIUM_QUEUE, HEAVY_QUEUE):
            if name not in catalog:
                raise RoutingError(f"the dynamic router needs queue {name!r} in the catalog")
        self.catalog = catalog
        self.heavy_threshold = heavy_threshold
        pairs = [(p, q.name) for q in catalog for p in q.task_patterns]
        self._patterns = sorted(pairs, key=lambda pair: _pattern_rank(pair[0]))

    def queue_for(self, task_name: str, kwargs: dict[str, Any] | None = None) -> str | None:
        """The queue the rules pick, or None for the default queue."""
        kwargs = kwargs or {}
        if kwargs.get("user_tier") == PREMIUM_TIER:
            return PREMIUM_QUEUE
        data_size = kwargs.get("data_size")
        if isinstance(data_size, int | float) and data_size > self.heavy_threshold:
            return HEAVY_QUEUE
        for pattern, queue in self._patterns:
            if fnmatchcase(task_name, pattern):
                return queue
        return None

    def __call__(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        options: dict[str, Any],
        task: Any = None,
        **_: Any,
    ) -> dict[str, str] | None:
        # Validated here because Celery swallows exceptions raised in publish signals.
        check_priority(options.get("priority"))
        queue = self.queue_for(name, kwargs)
        return None if queue is None else _destination(queue, self.catalog)


# (exchange, routing key) -> queue: the catalog's bindings, and the anonymous exchange ("")
# with the queue name as routing key, which is how the router's {"queue": name} publishes.
_QUEUE_BY_BINDING = {
    **{(spec.exchange, spec.routing_key): spec.name for spec in CATALOG},
    **{("", spec.name): spec.name for spec in CATALOG},
}


def queue_for_delivery(delivery_info: dict[str, Any] | None) -> str:
    """The catalog queue a message was consumed from (called for every task's metrics)."""
    info = delivery_info if isinstance(delivery_info, dict) else {}
    exchange, routing_key = info.get("exchange") or "", info.get("routing_key") or ""
    if not isinstance(exchange, str) or not isinstance(routing_key, str):
        return CATALOG.default_queue  # hostile delivery info: never a lookup that raises
    return _QUEUE_BY_BINDING.get((exchange, routing_key), CATALOG.default_queue)
