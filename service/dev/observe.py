"""What the live view and the summary show, read from the sources the dashboards use: the
worker's /metrics (task counters), the exporter's /metrics (waiting, oldest age, DLQ size),
Prometheus' alerts API, and the DLQ store (entries by reason). Nothing is counted here."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from service.catalog.queues import CATALOG
from service.config.redis_client import RedisClient
from service.dev.stubs import max_in_window
from service.dlq.reader import DLQReader
from service.tasks.analytics import EXTERNAL_CALLS_KEPT, EXTERNAL_CALLS_KEY

SCRAPE_TIMEOUT = 2.0
# Per-queue column -> (source, metric); the worker's counters carry a `_total` sample.
WORKER_COLUMNS = {
    "running": "celery_active_tasks",
    "succeeded": "celery_task_succeeded_total",
    "retried": "celery_task_retried_total",
    "failed": "celery_task_failed_total",
    "dead_lettered": "celery_task_dead_lettered_total",
}
EXPORTER_COLUMNS = {
    "waiting": "celery_queue_length",
    "oldest_waiting_seconds": "celery_queue_oldest_task_age_seconds",
    "dlq_size": "celery_dlq_length",
}
# Grant times are recorded by the task right after the limiter says yes, a few ms after the
# Redis clock granted them, so the check uses a slightly shorter window than the limit's.
RATE_WINDOW_SLACK = 0.95
COLUMNS = ("waiting", "running", "succeeded", "retried", "failed", "dead_lettered", "dlq_size")


@dataclass
class Snapshot:
    at: float
    queues: dict[str, dict[str, float]]
    workers_alive: int
    workers_expected: int
    exporter_up: bool
    alerts: list[dict[str, str]] | None  # None: no Prometheus to ask
    dlq_by_reason: dict[str, int]
    dlq_by_queue: dict[str, dict[str, int]]
    unavailable: list[str] = field(default_factory=list)  # sources that did not answer
    rate_limit: dict[str, float] = field(default_factory=dict)

    def totals(self) -> dict[str, float]:
        sums = {column: 0.0 for column in COLUMNS}
        for figures in self.queues.values():
            for column in COLUMNS:
                sums[column] += figures.get(column, 0.0)
        oldest = [f.get("oldest_waiting_seconds", 0.0) for f in self.queues.values()]
        sums["oldest_waiting_seconds"] = max(oldest, default=0.0)
        return sums

    def firing(self) -> list[dict[str, str]]:
        return [a for a in self.alerts or [] if a.get("state") == "firing"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"totals": self.totals()}


def scrape(url: str) -> dict[str, dict[str, float]] | None:
    """metric sample name -> queue -> value (summed over other labels); None if down."""
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return None
    samples: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][sample.labels.get("queue", "")] += sample.value
    return samples


def prometheus_alerts(base_url: str) -> list[dict[str, str]] | None:
    """Pending and firing alerts (name, queue, state) from Prometheus' HTTP API."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v1/alerts", timeout=SCRAPE_TIMEOUT) as r:
            data = json.loads(r.read())
    except (OSError, ValueError):
        return None
    alerts = []
    for alert in data.get("data", {}).get("alerts", []):
        labels = alert.get("labels", {})
        alerts.append(
            {
                "alertname": str(labels.get("alertname", "?")),
                "queue": str(labels.get("queue", "")),
                "severity": str(labels.get("severity", "")),
                "state": str(alert.get("state", "")),
            }
        )
    return sorted(alerts, key=lambda a: (a["state"] != "firing", a["alertname"], a["queue"]))


@dataclass
class Observer:
    worker_metrics_urls: list[str]
    exporter_url: str
    dlq: DLQReader
    prometheus_url: str | None = None
    broker: RedisClient | None = None
    since: float = 0.0  # only rate-limit grants of this run count
    rate_window: float = 1.0

    def snapshot(self) -> Snapshot:
        unavailable: list[str] = []
        queues: dict[str, dict[str, float]] = {name: {} for name in CATALOG.names}
        alive = 0
        for url in self.worker_metrics_urls:
            worker = scrape(url)
            if worker is None:
                unavailable.append(url)
                continue
            alive += 1
            for column, metric in WORKER_COLUMNS.items():
                for queue, value in worker.get(metric, {}).items():
                    if queue in queues:
                        queues[queue][column] = queues[queue].get(column, 0.0) + value
        exporter = scrape(self.exporter_url)
        exporter_up = exporter is not None and sum(exporter["celery_exporter_up"].values()) == 1
        if exporter is None:
            unavailable.append(self.exporter_url)
        else:
            for column, metric in EXPORTER_COLUMNS.items():
                for queue, value in exporter.get(metric, {}).items():
                    if queue in queues:
                        queues[queue][column] = value
        by_reason: dict[str, int] = defaultdict(int)
        by_queue: dict[str, dict[str, int]] = defaultdict(dict)
        try:
            for (queue, reason), count in self.dlq.stats().items():
                by_reason[reason] += count
                by_queue[queue][reason] = count
        except redis.RedisError:
            unavailable.append("dlq store")
        rate_limit = self._rate_limit(unavailable)
        alerts = None
        if self.prometheus_url is not None:
            alerts = prometheus_alerts(self.prometheus_url)
            if alerts is None:
                unavailable.append(self.prometheus_url)
        return Snapshot(
            at=time.time(),
            queues=queues,
            workers_alive=alive,
            workers_expected=len(self.worker_metrics_urls),
            exporter_up=exporter_up,
            alerts=alerts,
            dlq_by_reason=dict(by_reason),
            dlq_by_queue=dict(by_queue),
            unavailable=unavailable,
            rate_limit=rate_limit,
        )

    def _rate_limit(self, unavailable: list[str]) -> dict[str, float]:
        """Calls granted by the cluster-wide limiter this run, as the task recorded them."""
        if self.broker is None:
            return {}
        try:
            raw = self.broker.lrange(EXTERNAL_CALLS_KEY, -EXTERNAL_CALLS_KEPT, -1)
        except redis.RedisError:
            unavailable.append("broker")
            return {}
        times = [float(t) for t in raw if float(t) >= self.since]
        measured = self.rate_window * RATE_WINDOW_SLACK
        return {
            "granted": len(times),
            "measured_window_seconds": measured,
            "max_granted_in_window": max_in_window(times, measured),
        }
