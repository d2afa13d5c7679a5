"""Ownership instead of the visibility-timeout trade-off: with a visibility timeout (VT) far
below task durations and delays, a live worker's messages are never handed out again, and
kombu's global records (a stock client, the previous release) still come back after VT.

Each of these ran twice, was dead-lettered or was lost before ownership (issue: a 50 s task
ran twice with VT 20 s, a 45 s countdown was dead-lettered, a burst of ETAs ran twice)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from envelopes import call_body, envelope
from fault_bodies import executed, warm_shutdown_returns_prefetched_messages
from harness import metric_samples, unacked_count, wait_until

from service.catalog.naming import (
    LEGACY_UNACKED_INDEX_KEY,
    LEGACY_UNACKED_KEY,
    consumers_key,
    priority_list_keys,
)

RECORD = "service.tasks.diagnostics.record"
VT = 3
SHORT_VT = {
    "FLEET_VISIBILITY_TIMEOUT": str(VT),
    "FLEET_DEAD_OWNER_TIMEOUT_SECONDS": "3",
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
}


def test_a_task_running_3x_the_visibility_timeout_runs_once(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given two workers with VT 3 s (a re-delivery would reach the idle one)
    worker_factory("default", env=SHORT_VT, concurrency=1)
    worker_factory("default", env=SHORT_VT, concurrency=1)
    # When a task runs for 3x VT
    celery_app.send_task(RECORD, args=["long", "x", 3 * VT])
    wait_until(lambda: executed(redis_client, "long"), 40, message="the long task ran")
    time.sleep(2 * VT)
    # Then it ran once and nothing is left in flight
    assert executed(redis_client, "long") == {"x": 1}
    assert unacked_count(redis_client) == 0


def test_a_countdown_3x_the_visibility_timeout_runs_once_on_time(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    worker_factory("default", env=SHORT_VT, concurrency=1)
    worker_factory("default", env=SHORT_VT, concurrency=1)
    sent = time.time()
    celery_app.send_task(
        "service.tasks.diagnostics.stamp", args=["fleet:diag:eta"], countdown=3 * VT
    )
    wait_until(lambda: redis_client.llen("fleet:diag:eta"), 40, message="the countdown ran")
    time.sleep(2 * VT)
    runs = [float(t) for t in redis_client.lrange("fleet:diag:eta", 0, -1)]
    assert len(runs) == 1, runs
    assert sent + 3 * VT - 0.5 <= runs[0] <= sent + 3 * VT + 5, runs[0] - sent


def test_a_retry_with_a_countdown_3x_the_visibility_timeout_runs_again_once_on_time(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    worker_factory("default", env=SHORT_VT, concurrency=1)
    worker_factory("default", env=SHORT_VT, concurrency=1)
    celery_app.send_task("service.tasks.diagnostics.retry_later", args=["later", 3 * VT])
    key = "fleet:diag:attempts:later"
    wait_until(lambda: redis_client.llen(key) >= 2, 40, message="the retry ran")
    time.sleep(2 * VT)
    attempts = [float(t) for t in redis_client.lrange(key, 0, -1)]
    assert len(attempts) == 2, attempts
    assert 3 * VT - 0.5 <= attempts[1] - attempts[0] <= 3 * VT + 5, attempts


def test_a_burst_of_etas_coming_due_together_runs_each_exactly_once(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given one worker -c 2 and 60 tasks of 0.5 s all due in 6 s: the last waits ~15 s more,
    # five times VT, held by the worker all along
    worker_factory("default", env=SHORT_VT, concurrency=2)
    for i in range(60):
        celery_app.send_task(RECORD, args=["burst", str(i), 0.5], countdown=2 * VT)
    wait_until(lambda: len(executed(redis_client, "burst")) == 60, 90, message="all 60 ran")
    time.sleep(2 * VT)
    runs = executed(redis_client, "burst")
    assert {item: n for item, n in runs.items() if n != 1} == {}
    assert len(runs) == 60
    assert unacked_count(redis_client) == 0


def test_a_record_of_the_previous_release_is_restored_after_the_visibility_timeout(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a message the previous release (or a stock kombu client) popped and recorded in
    # kombu's global unacked hash, then died: no owner, only its pop time
    raw = envelope(RECORD, call_body("upgrade", "old"), task_id="from-the-old-release")
    tag = json.loads(raw)["properties"]["delivery_tag"]
    record = "[" + raw.decode() + ', "", "default"]'
    redis_client.hset(LEGACY_UNACKED_KEY, tag, record)
    redis_client.zadd(LEGACY_UNACKED_INDEX_KEY, {tag: time.time() - 1})
    # When a worker of this release runs
    worker = worker_factory("default", env=SHORT_VT)
    # Then the record is put back after VT and runs once, counted as a VT redelivery
    wait_until(lambda: executed(redis_client, "upgrade"), 30, message="the old record ran")
    time.sleep(VT)
    assert executed(redis_client, "upgrade") == {"old": 1}
    assert unacked_count(redis_client) == 0
    counted = metric_samples(worker.metrics_port, "celery_task_redelivered_total")
    assert counted[(("queue", "default"), ("reason", "visibility_timeout"))] == 1


def test_warm_shutdown_returns_prefetched_messages_at_once(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    worker = worker_factory("default", "--prefetch-multiplier", "8", env=SHORT_VT, concurrency=1)
    warm_shutdown_returns_prefetched_messages(
        redis_client,
        worker,
        lambda args: celery_app.send_task(RECORD, args=args),
        priority_list_keys("default"),
        lambda: unacked_count(redis_client),
        consumers_key("default"),
    )
