"""Item 9 of the hostile-input review, worker side: a key of the wrong type under a queue's
name (a string where a priority sub-list should be) must not stop the worker polling it.
The poll is the transport's: it skips such a key with a warning."""

from __future__ import annotations

import time
from typing import Any

import redis

NOOP = "service.tasks.diagnostics.noop"


def test_a_string_under_a_sub_list_name_does_not_stop_the_worker(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    redis_client.set("default\x06\x163", "not a list")
    worker = worker_factory("default")
    result = celery_app.send_task(NOOP, args=["still-served"], ignore_result=False)
    assert result.get(timeout=15) == "still-served"
    time.sleep(1)
    assert worker.alive()
