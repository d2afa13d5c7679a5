"""R4: every kind of poison pushed raw into a queue's Redis list ends in the DLQ with its
reason, and the worker keeps consuming."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import redis
from envelopes import call_body, envelope
from harness import wait_until

from service.dlq.access import dlq_reader
from service.dlq.reader import Filter

NOOP = "service.tasks.diagnostics.noop"

POISON = [
    ("malformed_body", envelope(NOOP, b"{not json")),
    ("malformed_body", envelope(NOOP, b'{"args": "wrong shape"}')),
    ("unknown_task", envelope("service.tasks.nope.missing", call_body(1))),
    (
        "content_type_rejected",
        envelope(NOOP, pickle.dumps(([1], {}, {})), content_type="application/x-python-serialize"),
    ),
    ("oversized_body", envelope(NOOP, call_body("x" * 5000))),
    ("invalid_arguments", envelope(NOOP, call_body(1, 2, 3))),
    ("invalid_arguments", envelope(NOOP, call_body(nonsense=True))),
    ("malformed_envelope", b"this is not json at all"),
    ("malformed_envelope", b'{"hello": "no kombu fields"}'),
    ("malformed_envelope", b"[1, 2, 3]"),
]


def test_each_poison_kind_is_dead_lettered_and_the_worker_keeps_going(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given poison of every kind waiting in the default queue
    for _, raw in POISON:
        redis_client.lpush("default", raw)
    # When a worker (body limit 2 KiB) consumes the queue
    worker = worker_factory("default", env={"FLEET_MAX_BODY_BYTES": "2048"})
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) >= len(POISON), 30, message="all poison captured")
    # Then each is in the DLQ with the right reason, nothing else, nothing lost
    expected: dict[str, int] = {}
    for reason, _ in POISON:
        expected[reason] = expected.get(reason, 0) + 1
    got = {reason: n for (_, reason), n in dlq.stats().items()}
    assert got == expected
    assert redis_client.llen("default") == 0
    assert redis_client.hlen("fleet:quarantine") == 0  # held only until the DLQ had them
    # And raw bodies are kept (bounded) for the operator
    entries = dlq.page(Filter(reason="malformed_body"))
    assert any("{not json" in (e["raw_body"] or "") for e in entries)
    # And the worker still serves normal work
    assert worker.alive()
    assert celery_app.send_task(NOOP, args=["still-alive"]).get(timeout=20) == "still-alive"


def test_a_replayed_unknown_task_runs_after_the_fix_is_deployed(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a message for a task the worker did not know (an old deploy)
    raw = envelope(NOOP, call_body("late"), task_id="late-task")
    redis_client.lpush("default", raw.replace(NOOP.encode(), b"service.tasks.old.noop"))
    worker_factory("default")
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter(reason="unknown_task")) == 1, 20, message="capture")
    entry = dlq.find("late-task", ("default",))
    assert entry["task_name"] == "service.tasks.old.noop"


@pytest.mark.parametrize("content_type", ["application/x-python-serialize", "text/plain"])
def test_content_types_other_than_json_are_refused(
    content_type: str, redis_client: redis.Redis, worker_factory: Any
) -> None:
    redis_client.lpush("default", envelope(NOOP, b"anything", content_type=content_type))
    worker_factory("default")
    dlq = dlq_reader()
    wait_until(
        lambda: dlq.count(Filter(reason="content_type_rejected")) == 1, 20, message="capture"
    )
