"""The queue exporter's Prometheus collector: reads Redis on every scrape (no background
poller racing scrapes, no stale values). Redis down: `celery_exporter_up 0`, the error counter
moves, and the queue gauges are left out rather than frozen at their last value."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.exporter.queue_stats import QueueStats

logger = logging.getLogger(__name__)

Reader = Callable[[], dict[str, QueueStats]]

# Seeded at 0 so rate()/increase() see the first error instead of a series appearing from
# nothing; redis-py's ConnectionError and TimeoutError are what an outage raises.
SEEDED_ERRORS = ("ConnectionError", "TimeoutError")


class QueueCollector(Collector):
    """`read` returns stats for every catalog queue or raises; `scrub` removes secrets from
    error text before it is logged."""

    def __init__(self, read: Reader, scrub: Callable[[str], str] = lambda text: text) -> None:
        self._read = read
        self._scrub = scrub
        self._lock = threading.Lock()
        self._errors = dict.fromkeys(SEEDED_ERRORS, 0)
        self._failing = False

    def describe(self) -> Iterable[Metric]:
        # Lets registry.register() check names without a Redis round trip.
        return self._families(up=False, stats=None, duration=0.0)

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        stats: dict[str, QueueStats] | None
        try:
            stats = self._read()
        except Exception as exc:  # any failure must still leave /metrics answering
            stats = None
            self._record_failure(exc)
        else:
            self._record_success()
        return self._families(
            up=stats is not None, stats=stats, duration=time.perf_counter() - started
        )

    def _record_failure(self, exc: Exception) -> None:
        kind = type(exc).__name__
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + 1
            first = not self._failing
            self._failing = True
        # Once per outage at WARNING; every scrape during it would flood the logs.
        level = logging.WARNING if first else logging.DEBUG
        logger.log(level, "queue scrape failed: %s: %s", kind, self._scrub(str(exc)))

    def _record_success(self) -> None:
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            logger.warning("queue scrape recovered: Redis answers again")

    def _families(
        self, up: bool, stats: dict[str, QueueStats] | None, duration: float
    ) -> Iterator[Metric]:
        length = GaugeMetricFamily(
            "celery_queue_length",
            "Messages waiting in the queue (every priority sub-list summed).",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "celery_queue_oldest_task_age_seconds",
            "Age of the oldest waiting message (0 when the queue is empty).",
            labels=["queue"],
        )
        dlq = GaugeMetricFamily(
            "celery_dlq_length", "Entries in the queue's dead-letter store.", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "celery_queue_live_consumers",
            "Worker connections consuming the queue whose heartbeat is within the dead-owner "
            "timeout.",
            labels=["queue"],
        )
        for name, queue in (stats or {}).items():
            length.add_metric([name], queue.length)
            age.add_metric([name], queue.oldest_age_seconds)
            dlq.add_metric([name], queue.dlq_length)
            consumers.add_metric([name], queue.live_consumers)
        yield from (length, age, dlq, consumers)
        yield GaugeMetricFamily(
            "celery_exporter_up", "1 if the last scrape read Redis, 0 if not.", value=int(up)
        )
        errors = CounterMetricFamily(
            "celery_exporter_errors", "Scrapes that failed, by exception class.", labels=["error"]
        )
        with self._lock:
            counts = sorted(self._errors.items())
        for kind, count in counts:
            errors.add_metric([kind], count)
        yield errors
        yield GaugeMetricFamily(
            "celery_exporter_scrape_duration_seconds",
            "Time the last scrape spent reading Redis.",
            value=duration,
        )
