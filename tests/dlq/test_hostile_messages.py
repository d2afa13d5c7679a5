"""Item 1 of the hostile-input review: a message that breaks decoding or validation at any
step ends in the DLQ with its raw bytes and a reason; the worker keeps consuming."""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from harness import unacked_count, wait_until
from hostile import HOSTILE, NOOP

from service.dlq.access import dlq_reader


def test_every_hostile_message_is_dead_lettered_and_the_worker_survives(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    for _, raw in HOSTILE.values():
        redis_client.lpush("default", raw)
    worker = worker_factory("default")
    dlq = dlq_reader()

    def missing() -> list[str]:
        return [name for name, (tid, _) in HOSTILE.items() if dlq.get("default", tid) is None]

    with contextlib.suppress(AssertionError):
        wait_until(lambda: not missing() or not worker.alive(), 40, message="all dead-lettered")
    assert worker.alive(), f"worker died; not dead-lettered: {missing()}"
    assert missing() == []
    for name, (tid, _) in HOSTILE.items():
        entry = dlq.get("default", tid)
        assert entry is not None and entry["raw_body"], name
        assert entry["reason"] in {"malformed_body", "invalid_message"}, (name, entry["reason"])
    alive = celery_app.send_task(NOOP, args=["alive"], ignore_result=False)
    assert alive.get(timeout=20) == "alive"
    assert redis_client.llen("default") == 0
    wait_until(lambda: unacked_count(redis_client) == 0, 10, message="nothing in flight")


def test_a_message_without_exchange_in_delivery_info_runs(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # kombu's Redis QoS read delivery_info['exchange'] on arrival: KeyError, taken for a lost
    # connection, and the message came back forever (found by the fuzz test)
    from hostile import GOOD_BODY, raw_envelope

    task_id, raw = raw_envelope(
        GOOD_BODY, headers={"ignore_result": False}, properties={"delivery_info": {}}
    )
    redis_client.lpush("default", raw)
    worker = worker_factory("default")
    assert celery_app.AsyncResult(task_id).get(timeout=20) == "ok"
    assert worker.alive() and "Connection to broker lost" not in worker.log()
    wait_until(lambda: unacked_count(redis_client) == 0, 10, message="acked")
