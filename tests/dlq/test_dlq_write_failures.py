"""Item 2 of the hostile-input review: a DLQ write that fails for the entry's content falls
back to a minimal entry (no endless requeue); one that fails because Redis is unavailable
backs off instead of spinning."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import redis
from envelopes import envelope
from harness import free_port, unacked_count, wait_until

from service.catalog.naming import unacked_key
from service.dlq.access import dlq_reader
from service.dlq.reader import Filter

FAIL = "service.tasks.diagnostics.fail"
# Runs are counted from Celery's "received" log lines.
LOG_TASKS = {"FLEET_LOG_EVERY_TASK": "true"}


def test_a_failure_with_non_finite_float_arguments_is_dead_lettered_once(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a task that fails permanently with arguments Redis' cjson cannot encode
    worker = worker_factory("default", env=LOG_TASKS)
    result = celery_app.send_task(FAIL, args=[math.inf])
    # Then it is in the DLQ (the non-finite value shown as text), once, and not rerun
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == 1, 20, message="entry")
    entry = dlq.find(result.id, ("default",))
    assert entry["args"] == ["inf"]
    assert entry["occurrences"] == 1
    time.sleep(2)
    assert worker.log().count(f"{FAIL}[{result.id}] received") == 1
    assert redis_client.llen("default") == 0 and unacked_count(redis_client) == 0


def test_an_entry_redis_refuses_falls_back_to_a_minimal_entry(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given an entry for id "dup" from one task...
    worker = worker_factory("default", env=LOG_TASKS)
    first = celery_app.send_task(FAIL, args=["one"], task_id="dup")
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == 1, 20, message="first entry")
    # ...when a message of another task with the same id fails
    celery_app.send_task("service.tasks.diagnostics.until_fixed", args=["zz"], task_id="dup")
    # Then the second lands as a minimal entry next to the first, once, and is acked
    wait_until(lambda: dlq.count(Filter()) == 2, 20, message="fallback entry")
    entries = {e["id"]: e for e in dlq.page(Filter())}
    assert first.id in entries
    (fallback,) = [e for e in entries.values() if e["id"] != "dup"]
    assert fallback["id"].startswith("dup~") and fallback["minimal"] is True
    assert "exists with other reason/task" in fallback["dlq_write_error"]
    time.sleep(2)
    assert worker.log().count("until_fixed[dup] received") == 1
    assert unacked_count(redis_client) == 0


def test_dlq_redis_down_backs_off_instead_of_spinning(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker whose DLQ Redis does not answer
    dead = f"redis://127.0.0.1:{free_port()}/0"
    # (the poison waits in the queue before the worker starts: picked up by its first poll)
    redis_client.lpush("default", envelope(FAIL, b"{not json", task_id="poison"))
    worker = worker_factory("default", env={"FLEET_DLQ_URL": dead, **LOG_TASKS})
    # When a task fails permanently too
    result = celery_app.send_task(FAIL, args=["boom"])
    time.sleep(12)
    # Then each is retried a handful of times, not thousands, and nothing is lost
    runs = worker.log().count(f"{FAIL}[{result.id}] received")
    poison_tries = len(
        re.findall(r"dead-letter write failed \(\w+\); message requeued in", worker.log())
    )
    assert 1 <= runs <= 3, runs
    assert 1 <= poison_tries <= 5, poison_tries
    assert worker.alive()
    waiting = redis_client.llen("default") + unacked_count(redis_client)
    assert waiting >= 1
    stored = [json.loads(v) for v in redis_client.hvals(unacked_key("default"))]
    assert stored or redis_client.llen("default")
