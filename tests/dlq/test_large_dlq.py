"""Correctness at 100k entries (speed is measured by `make bench`, not here)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from envelopes import call_body, envelope

from service.dlq.access import dlq_reader, dlq_writer
from service.dlq.reader import Filter

# The store caps task names in its index keys to the tasks the app registers: build the app,
# as a worker and `fleet dlq` do.
pytestmark = pytest.mark.usefixtures("celery_app")

SIZE = 100_000


def entries(n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    items = []
    for i in range(n):
        entry = {
            "id": f"id-{i:06d}",
            "task_id": f"id-{i:06d}",
            "task_name": "service.tasks.diagnostics.noop",
            "queue": "default",
            "reason": "non_retryable_error" if i % 10 else "unknown_task",
            "last_failure_at": 1_700_000_000 + i / 1000,
            "first_failure_at": 1_700_000_000,
            "retries": 0,
            "args": [i],
            "kwargs": {},
        }
        raw = json.loads(
            envelope("service.tasks.diagnostics.noop", call_body(i), task_id=f"id-{i:06d}")
        )
        items.append((entry, raw))
    return items


def test_show_replay_and_list_at_100k(redis_client: redis.Redis) -> None:
    # Given 100k entries written directly
    dlq = dlq_reader()
    items = entries(SIZE)
    for start in range(0, SIZE, 10_000):
        assert dlq_writer().add_many(items[start : start + 10_000]) == 10_000
    assert dlq.count(Filter()) == SIZE
    assert dlq.stats() == {
        ("default", "non_retryable_error"): 90_000,
        ("default", "unknown_task"): 10_000,
    }
    # Then one entry in the middle is found and shown
    assert dlq.find("id-054321", ("default",))["args"] == [54321]
    # And replay by id moves exactly that one message, once
    assert dlq_writer().replay("default", "id-054321") is True
    assert dlq_writer().replay("default", "id-054321") is False
    assert redis_client.llen("default") == 1
    pushed = json.loads(redis_client.lindex("default", 0))
    assert pushed["headers"]["id"] == "id-054321"
    assert dlq.count(Filter()) == SIZE - 1
    # And the newest page comes first, filters use their index
    assert [e["id"] for e in dlq.page(Filter(), limit=3)] == ["id-099999", "id-099998", "id-099997"]
    assert [e["id"] for e in dlq.page(Filter(reason="unknown_task"), limit=2)] == [
        "id-099990",
        "id-099980",
    ]
