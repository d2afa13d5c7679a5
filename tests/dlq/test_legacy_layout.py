"""Dead letters written before the hash-tagged layout are moved to it, none lost, none
doubled, and the move is idempotent (a second run, or a crash and a rerun, finds nothing
more to do)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from envelopes import call_body, envelope

from service.dlq.keys import claims_key
from service.dlq.legacy_layout import (
    LEGACY_CLAIMS_KEY,
    LEGACY_GLOBAL_INDEX,
    LEGACY_STATS_KEY,
    legacy_entry_keys,
    migrate_legacy_layout,
)
from service.dlq.reader import Filter
from service.dlq.writer import DLQWriter

SEP = "\x06\x16"

# Both layouts cap task names in their index keys to the tasks the app registers: build the
# app, as a worker and `fleet dlq` do.
pytestmark = pytest.mark.usefixtures("celery_app")


def write_legacy(client: redis.Redis, queue: str, entry_id: str, reason: str, at: float) -> None:
    """What the previous release's store wrote for one entry (its ADD script, unrolled)."""
    task = "service.tasks.diagnostics.noop"
    entry: dict[str, Any] = {
        "id": entry_id,
        "task_id": entry_id,
        "task_name": task,
        "queue": queue,
        "reason": reason,
        "last_failure_at": at,
        "first_failure_at": at,
        "retries": 0,
        "args": [1],
        "kwargs": {},
    }
    message = envelope(task, call_body(1), task_id=entry_id)
    entries, envelopes, index, global_index, by_reason, by_task, stats = legacy_entry_keys(
        queue, reason, task
    )
    member, score = f"{queue}|{entry_id}", int(at * 1000)
    pipe = client.pipeline()
    pipe.hset(entries, entry_id, json.dumps(entry))
    pipe.hset(envelopes, entry_id, message)
    pipe.zadd(index, {entry_id: score})
    for key in (global_index, by_reason, by_task):
        pipe.zadd(key, {member: score})
    pipe.hincrby(stats, f"{queue}|{reason}", 1)
    pipe.execute()


def test_old_entries_move_and_stay_usable(redis_client: redis.Redis) -> None:
    # Given 30 entries on two queues and a replay claim in flight, in the old layout
    for i in range(20):
        write_legacy(redis_client, "email", f"e{i}", "max_retries_exceeded", 1.7e9 + i)
    for i in range(10):
        write_legacy(redis_client, "reports", f"r{i}", "unknown_task", 1.7e9 + 100 + i)
    claim = {"target": f"email{SEP}6", "message": "aGVsbG8="}
    redis_client.hset(LEGACY_CLAIMS_KEY, "c1", json.dumps(claim))
    # When the layout is migrated (twice: the second run finds nothing)
    assert migrate_legacy_layout(redis_client, SEP) == 30
    assert migrate_legacy_layout(redis_client, SEP) == 0
    # Then nothing of the old layout is left, and every entry reads back in the new one
    leftovers = [k.decode() for k in redis_client.keys("fleet:dlq:*") if b"{" not in k]
    assert leftovers == ["fleet:dlq:queues"] or leftovers == []
    assert not redis_client.exists(LEGACY_GLOBAL_INDEX, LEGACY_STATS_KEY, LEGACY_CLAIMS_KEY)
    store = DLQWriter(redis_client)
    assert store.reader.count(Filter()) == 30
    assert store.reader.stats() == {
        ("email", "max_retries_exceeded"): 20,
        ("reports", "unknown_task"): 10,
    }
    newest = [e["id"] for e in store.reader.page(Filter(), limit=3)]
    assert newest == ["r9", "r8", "r7"]
    assert [e["id"] for e in store.reader.page(Filter(reason="max_retries_exceeded"), limit=2)] == [
        "e19",
        "e18",
    ]
    # A replay of a migrated entry pushes its original message, once (priority 0: the
    # queue's base list)
    assert store.replay("email", "e3") is True
    assert store.replay("email", "e3") is False
    assert [json.loads(m)["headers"]["id"] for m in redis_client.lrange("email", 0, -1)] == ["e3"]
    # The claim moved to its destination queue and the next replay run pushes it
    assert redis_client.hlen(claims_key("email")) == 1
    assert store.resume_claims() == 1
    assert redis_client.lrange(f"email{SEP}6", 0, -1) == [b"hello"]
    assert redis_client.hlen(claims_key("email")) == 0


def test_an_id_recaptured_after_the_upgrade_keeps_the_new_entry(redis_client: redis.Redis) -> None:
    write_legacy(redis_client, "default", "same", "non_retryable_error", 1.7e9)
    store = DLQWriter(redis_client)
    fresh = json.loads(envelope("service.tasks.diagnostics.noop", call_body(2), task_id="same"))
    store.add(
        {  # type: ignore[typeddict-item]
            "id": "same",
            "task_id": "same",
            "task_name": "service.tasks.diagnostics.noop",
            "queue": "default",
            "reason": "non_retryable_error",
            "last_failure_at": 1.8e9,
            "first_failure_at": 1.8e9,
            "retries": 0,
            "args": [2],
            "kwargs": {},
        },
        fresh,
    )
    assert migrate_legacy_layout(redis_client, SEP) == 1
    assert store.reader.count(Filter()) == 1
    assert store.reader.stats() == {("default", "non_retryable_error"): 1}
    kept = store.reader.get("default", "same")
    assert kept is not None and kept["args"] == [2]
