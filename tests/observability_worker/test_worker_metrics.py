"""Worker metrics are exact under prefork, and stay bounded when children are recycled."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import redis
from harness import wait_until
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> dict[str, float]:
    """Sum of every sample per (sample name) and per (name, queue, task)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def test_recycled_children_keep_exact_totals_and_bounded_files(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker that replaces each child after every task (300 child processes)
    worker = worker_factory("default", "--max-tasks-per-child", "1", concurrency=2)
    # When 300 tasks succeed and 5 are dead-lettered
    results = [celery_app.send_task("service.tasks.diagnostics.noop", args=[i]) for i in range(300)]
    for result in results:
        result.get(timeout=120)
    for i in range(5):
        celery_app.send_task("service.tasks.diagnostics.fail", args=[f"f{i}"]).get(
            timeout=30, propagate=False
        )
    # Then the totals served by the main process are exact (not 1/concurrency of them)
    totals = wait_until(
        lambda: (t := scrape(worker.metrics_port)).get("celery_task_succeeded_total") == 300 and t,
        20,
        message="300 successes",
    )
    assert totals["celery_task_started_total"] == 305
    assert totals["celery_task_failed_total"] == 5
    assert totals["celery_task_dead_lettered_total"] == 5
    assert totals["celery_task_duration_seconds_count"] == 305
    assert totals["celery_task_queue_wait_seconds_count"] == 305
    assert totals["celery_active_tasks"] == 0
    # And the multiprocess dir holds the archives plus files of live processes only:
    # <= 3 kinds (counter, histogram, live gauge) x (main + 2 children + 2 just replaced) + 2
    files = sorted(p.name for p in Path(worker.env["FLEET_METRICS_DIR"]).glob("*.db"))
    assert len(files) <= 3 * 5 + 2, files
    assert "counter_archive.db" in files and "histogram_archive.db" in files


def test_worker_logs_are_json_with_task_context(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker logging JSON
    worker = worker_factory("default", env={"FLEET_LOG_FORMAT": "json"})
    # When a task with a secret kwarg fails and is dead-lettered
    result = celery_app.send_task(
        "service.tasks.diagnostics.until_fixed", args=["logs"], kwargs={"password": "hunter2"}
    )
    result.get(timeout=20, propagate=False)
    wait_until(
        lambda: "until_fixed" in worker.log() and "raised" in worker.log(),
        10,
        message="failure logged",
    )
    # Then every log line after the banner is one JSON object, task lines carry the context
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert records
    for record in records:
        assert {"time", "level", "message", "logger", "worker"} <= set(record)
    task_lines = [r for r in records if r.get("task_id") == result.id]
    assert task_lines
    assert task_lines[0]["task_name"] == "service.tasks.diagnostics.until_fixed"
    assert task_lines[0]["queue"] == "default"
    assert task_lines[0]["retries"] == 0
    # And the secret never appears, while the key does (masked)
    assert "hunter2" not in worker.log()
    assert "password" in worker.log()


def samples(port: int, name: str) -> dict[tuple[str, str], float]:
    """(queue, task_name) -> value of one sample name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.labels["queue"], s.labels["task_name"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_known_label_sets_start_at_zero_and_settings_come_from_the_catalog(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    from service.catalog.queues import CATALOG
    from service.catalog.routing import tasks_served

    # Given a worker of a queue started without -c (its settings come from the catalog)
    queue = "heavy_processing"
    worker = worker_factory(queue, concurrency=None)
    assert f"concurrency: {CATALOG.get(queue).concurrency} (prefork)" in worker.log()
    celery_app.loader.import_default_modules()
    served = tasks_served(queue, [n for n in celery_app.tasks if not n.startswith("celery.")])
    assert "service.tasks.diagnostics.noop" in served
    # When nothing ran yet, then every (queue, task) it serves is scraped at 0
    expected = {(queue, task): 0.0 for task in served}
    for name in ("celery_task_started_total", "celery_task_retried_total", "celery_active_tasks"):
        assert samples(worker.metrics_port, name) == expected, name
    # and labels with open values (exception) wait for their first event
    assert samples(worker.metrics_port, "celery_task_failed_total") == {}
    # When one task runs in a child, then its count adds to the same series
    celery_app.send_task("service.tasks.diagnostics.noop", args=[1], queue=queue).get(timeout=30)
    started = wait_until(
        lambda: (
            (s := samples(worker.metrics_port, "celery_task_succeeded_total"))
            and s[(queue, "service.tasks.diagnostics.noop")] == 1
            and s
        ),
        20,
        message="one success",
    )
    assert sum(started.values()) == 1 and set(started) == set(expected)
