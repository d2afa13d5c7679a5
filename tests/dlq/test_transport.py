"""The transport's pop and its unacked record are one atomic step, so no kill or restart can
leave a message popped but unrecorded."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from envelopes import call_body, envelope
from harness import pop_script_args, unacked_count, wait_until

from service.catalog.naming import (
    LEGACY_QUARANTINE_KEY,
    consumers_key,
    held_key,
    quarantine_field,
    quarantine_key,
    unacked_key,
    wake_key,
)
from service.dlq.access import dlq_reader
from service.dlq.reader import Filter
from service.transport.scripts import HEARTBEAT, POP_AND_TRACK, RESTORE_HELD

LISTS = ["default", "default\x06\x163"]
CONSUMER = "test-consumer"


def pop(client: redis.Redis) -> list[bytes] | None:
    """[list, item] of the popped message, None when every list is empty."""
    reply = client.eval(POP_AND_TRACK, *pop_script_args(lists=LISTS, consumer=CONSUMER))
    return reply[:2] if reply[0] else None  # type: ignore[index,no-any-return]


def test_pop_records_the_message_as_unacked_in_the_same_script(
    redis_client: redis.Redis,
) -> None:
    # Given a message in the priority-3 sub-list
    raw = envelope("service.tasks.diagnostics.noop", call_body([], {"a": []}), task_id="t1")
    redis_client.lpush("default\x06\x163", raw)
    tag = json.loads(raw)["properties"]["delivery_tag"]
    # When it is popped
    list_key, item = pop(redis_client) or [b"", b""]
    # Then it came from its sub-list, byte for byte, and is already tracked as unacked
    assert (list_key, item) == (b"default\x06\x163", raw)
    stored = json.loads(redis_client.hget(unacked_key("default"), tag))
    assert json.dumps(stored[0]).encode() == json.dumps(json.loads(raw)).encode()
    assert stored[1:] == ["", "default"]
    # and owned by its consumer (held, in pop order)
    assert redis_client.zscore(held_key("default", CONSUMER), tag) == 1_700_000_000.5
    # And an empty poll returns nothing and changes nothing
    assert pop(redis_client) is None
    assert unacked_count(redis_client) == 1


def test_garbage_is_quarantined_not_lost(redis_client: redis.Redis) -> None:
    redis_client.lpush("default", b"\xff not a message")
    assert pop(redis_client) == [b"default", b"\xff not a message"]
    assert redis_client.hvals(quarantine_key("default")) == [b"\xff not a message"]
    assert unacked_count(redis_client) == 0


def test_a_worker_dead_letters_what_a_crashed_worker_left_quarantined(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given an item quarantined by a worker that died before its DLQ write
    redis_client.lpush("default", b"left behind")
    pop(redis_client)
    assert redis_client.hlen(quarantine_key("default")) == 1
    # When a worker starts, then it moves the item to the DLQ with its queue
    worker_factory("default")
    wait_until(lambda: dlq_reader().count(Filter()) == 1, 20, message="drained")
    assert redis_client.hlen(quarantine_key("default")) == 0
    assert dlq_reader().page(Filter(queue="default"))[0]["raw_body"] == "left behind"


def test_a_worker_drains_the_global_quarantine_of_an_earlier_release(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given items an earlier release left in its one global quarantine hash: bytes that are
    # not a message, and a message Python can read
    readable = envelope("service.tasks.diagnostics.record", call_body("legacy-q", "m1"))
    for item in (b"left behind", readable):
        redis_client.hset(LEGACY_QUARANTINE_KEY, quarantine_field("default", item), item)
    # When a worker starts, then the bytes reach the DLQ and the message runs
    worker_factory("default")
    wait_until(lambda: dlq_reader().count(Filter()) == 1, 20, message="drained")
    runs = "fleet:diag:runs:legacy-q"
    wait_until(lambda: redis_client.hget(runs, "m1") == b"1", 20, message="ran")
    assert redis_client.hlen(LEGACY_QUARANTINE_KEY) == 0


def _restore(client: redis.Redis, mode: str, tag: str, message: bytes) -> list[Any]:
    keys = [consumers_key("default"), held_key("default", CONSUMER), unacked_key("default")]
    keys += [wake_key("default"), "default"]
    reply = client.eval(RESTORE_HELD, len(keys), *keys, CONSUMER, mode, "right", tag, 1, message)
    return list(reply)  # type: ignore[arg-type]


def test_a_live_owners_message_is_never_restored_and_a_dead_ones_exactly_once(
    redis_client: redis.Redis,
) -> None:
    # Given a message popped (recorded and owned) by a consumer that just beat
    raw = envelope("service.tasks.diagnostics.noop", call_body(), task_id="owned")
    redis_client.lpush("default", raw)
    pop(redis_client)
    beat = redis_client.eval(HEARTBEAT, 1, consumers_key("default"), CONSUMER, 30, 10)
    assert len(beat) == 1 and abs(float(beat[0]) - time.time()) < 5  # Redis' time, nobody dead
    tag = json.loads(raw)["properties"]["delivery_tag"]
    # When a sweep with a 30 s dead-owner timeout tries to restore it: refused, untouched
    assert _restore(redis_client, "30", tag, raw)[0] == -1
    assert redis_client.llen("default") == 0
    assert redis_client.hexists(unacked_key("default"), tag)
    # When the owner's beat is stale, two sweeps race: the message is pushed once
    redis_client.zadd(consumers_key("default"), {CONSUMER: 1})
    assert _restore(redis_client, "30", tag, raw)[0] == 1
    assert _restore(redis_client, "30", tag, raw)[0] == 0
    assert redis_client.lrange("default", 0, -1) == [raw]
    assert redis_client.llen(wake_key("default")) == 1
    # And the dead consumer, holding nothing more, is forgotten
    assert unacked_count(redis_client) == 0
    assert not redis_client.exists(held_key("default", CONSUMER))
    assert redis_client.zscore(consumers_key("default"), CONSUMER) is None
