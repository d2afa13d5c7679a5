"""Results in Redis, compressed when FLEET_RESULT_COMPRESSION is set: the stored key holds a
compressed payload, and a caller with no compression setting of its own still reads it
(Celery writes the method in front of the payload)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
from harness import Worker


def test_compressed_results_are_smaller_and_still_readable(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Callable[..., Worker]
) -> None:
    worker_factory("default", env={"FLEET_RESULT_COMPRESSION": "gzip"})
    report = {"rows": [{"region": "emea", "total": 1234.5}] * 200}
    result = celery_app.send_task("service.tasks.diagnostics.noop", args=[report])
    assert result.get(timeout=30) == report
    raw = redis_client.get(f"celery-task-meta-{result.id}")
    assert isinstance(raw, bytes)
    assert not raw.startswith(b"{")  # not the plain JSON document
    assert len(raw) < len(json.dumps(report)) / 5
