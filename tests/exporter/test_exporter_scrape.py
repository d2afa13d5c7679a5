"""The real `fleet exporter` process: queue lengths over every priority sub-list, oldest
task age, DLQ sizes, /healthz, and a clean exit on SIGTERM."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from exporter_harness import run_exporter

from service.catalog.queues import CATALOG, Priority
from service.dlq.access import dlq_writer

NOOP = "service.tasks.diagnostics.noop"  # routed to `default`
EMAIL = "service.tasks.email.send_email"  # `service.tasks.email.*` -> `email`
MONTHLY = "service.tasks.reports.generate_monthly_report"  # -> `low_priority` (no priorities)


def _dlq_entry(queue: str, index: int) -> dict[str, Any]:
    return {
        "id": f"{queue}-{index}",
        "task_id": f"{queue}-{index}",
        "task_name": "t.x",
        "queue": queue,
        "reason": "non_retryable_error",
        "last_failure_at": 1_700_000_000 + index,
        "first_failure_at": 1_700_000_000,
        "retries": 0,
        "kwargs": {},
        "args": [],
    }


def test_scrape_reports_every_queue_over_all_priority_sublists(
    celery_app: Any, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    # Given no worker, messages to `default` at every priority (1 + 2 + 3 + 4 = 10)...
    per_priority = {Priority.URGENT: 1, Priority.HIGH: 2, Priority.NORMAL: 3, Priority.LOW: 4}
    first_sent: float | None = None
    for priority, count in per_priority.items():
        for i in range(count):
            celery_app.send_task(NOOP, args=[i], priority=int(priority))
            first_sent = first_sent or time.time()
    assert first_sent is not None
    # ...to `email` at two priorities, and to `low_priority` (one FIFO list, priority ignored)
    for priority in (Priority.URGENT, Priority.LOW, Priority.LOW):
        celery_app.send_task(EMAIL, args=["a@example.com"], priority=int(priority))
    for _ in range(2):
        celery_app.send_task(MONTHLY, priority=int(Priority.LOW))
    # ...and dead-letter entries for `reports` (3) and `email` (1)
    dlq = dlq_writer()
    for i in range(3):
        dlq.add(_dlq_entry("reports", i), {"headers": {}, "properties": {}, "body": ""})
    dlq.add(_dlq_entry("email", 0), {"headers": {}, "properties": {}, "body": ""})
    # (the base list alone holds only the URGENT message: summing sub-lists is what matters)
    assert redis_client.llen("default") == 1
    time.sleep(1)

    with run_exporter(redis_url, tmp_path) as exporter:
        # When Prometheus scrapes
        elapsed = time.time() - first_sent
        scrape = exporter.scrape()

        # Then the exporter is up and every catalog queue has exactly one series per gauge
        assert scrape.value("celery_exporter_up") == 1
        lengths = scrape.by_queue("celery_queue_length")
        ages = scrape.by_queue("celery_queue_oldest_task_age_seconds")
        dlq_lengths = scrape.by_queue("celery_dlq_length")
        for series in (lengths, ages, dlq_lengths):
            assert set(series) == set(CATALOG.names)
        # And lengths sum every priority sub-list
        expected = dict.fromkeys(CATALOG.names, 0) | {"default": 10, "email": 3, "low_priority": 2}
        assert lengths == expected
        # And the oldest age is at least the time since the first send; 0 for empty queues
        assert elapsed <= ages["default"] < elapsed + 30
        assert ages["email"] >= 1
        assert ages["analytics"] == 0
        # And DLQ lengths are per source queue
        assert dlq_lengths == dict.fromkeys(CATALOG.names, 0) | {"reports": 3, "email": 1}
        # And no process/platform collector is mixed in
        assert not [name for name in scrape.samples if name.startswith(("process_", "python_"))]

        # When messages are consumed (here: the lists emptied), the next scrape follows
        redis_client.flushall()
        after = exporter.scrape()
        # Then it reads Redis again rather than serving a cached value
        assert set(after.by_queue("celery_queue_length").values()) == {0}
        assert set(after.by_queue("celery_queue_oldest_task_age_seconds").values()) == {0}

        # And /healthz answers, unknown paths are 404
        assert exporter.get("/healthz") == (200, "ok\n")
        assert exporter.get("/nope")[0] == 404

        # When the pod is stopped, Then the process exits 0
        assert exporter.stop() == 0, exporter.log()
