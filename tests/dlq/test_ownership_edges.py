"""Ownership at its edges, against real redis-servers: a Redis that refuses writes for longer
than the dead-owner timeout (its heartbeats refused too) makes no live worker's task run
twice, and a consumer dropped from the consumers set while alive re-registers at its next
pop, so a held set is never orphaned."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from envelopes import call_body, envelope
from harness import pop_script_args, unacked_count, wait_until

from service.app_factory import create_app
from service.catalog.naming import consumers_key, held_key, unacked_key, wake_key
from service.config.settings import FleetSettings
from service.transport.scripts import POP_AND_TRACK, RESTORE_HELD

RECORD = "service.tasks.diagnostics.record"
TIMEOUT_S = 3
SHORT_TIMEOUT = {
    "FLEET_DEAD_OWNER_TIMEOUT_SECONDS": str(TIMEOUT_S),
    "FLEET_IDLE_POLL_SECONDS": "2",
}


def runs(client: redis.Redis, run: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(f"fleet:diag:runs:{run}").items()}


def _refuse_writes(client: redis.Redis, how: str) -> None:
    if how == "full":  # noeviction and over maxmemory: every write is refused (OOM)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        return
    # MISCONF: a failed snapshot with stop-writes-on-bgsave-error refuses every write. The
    # snapshot fails at its rename onto a directory in the snapshot's place (`dir` cannot be
    # changed at run time, and permissions do not stop root).
    snapshot = Path(client.config_get("dir")["dir"]) / client.config_get("dbfilename")["dbfilename"]
    snapshot.unlink(missing_ok=True)
    snapshot.mkdir()
    client.config_set("save", "3600 1")
    client.bgsave()
    wait_until(
        lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err", 10,
        message="the snapshot failed",
    )  # fmt: skip
    with pytest.raises(redis.ResponseError, match="MISCONF"):
        client.set("fleet:test:probe", 1)


def _accept_writes(client: redis.Redis, how: str) -> None:
    if how == "full":
        client.config_set("maxmemory", 0)
        return
    snapshot = Path(client.config_get("dir")["dir"]) / client.config_get("dbfilename")["dbfilename"]
    snapshot.rmdir()
    client.bgsave()
    wait_until(
        lambda: client.info("persistence")["rdb_last_bgsave_status"] == "ok", 10,
        message="a snapshot succeeded",
    )  # fmt: skip


@pytest.mark.parametrize("how", ["full", "misconf"])
def test_redis_refusing_writes_longer_than_the_dead_owner_timeout_runs_no_task_twice(
    redis_factory: Any,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    # Given two live workers on a private Redis, each holding long tasks
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    for _ in range(2):
        worker_factory("default", broker_url=server.url, env=SHORT_TIMEOUT, concurrency=2)
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", server.url)
    producer = create_app(FleetSettings())
    duration = 6 * TIMEOUT_S
    for i in range(4):
        producer.send_task(RECORD, args=["refused", str(i), duration])
    wait_until(lambda: unacked_count(client) == 4, 20, message="all 4 held")
    # When Redis refuses every write (the heartbeats too) for 3x the dead-owner timeout
    _refuse_writes(client, how)
    time.sleep(3 * TIMEOUT_S)
    # And then takes writes again while the tasks still run
    _accept_writes(client, how)
    # Then every task runs exactly once: no live worker's messages were restored
    wait_until(lambda: len(runs(client, "refused")) == 4, duration + 30, message="4 ran")
    time.sleep(2 * TIMEOUT_S + 2)  # a wrong restore would have run again by now
    assert runs(client, "refused") == {str(i): 1 for i in range(4)}
    wait_until(lambda: unacked_count(client) == 0, 20, message="all acked")


def test_a_consumer_dropped_while_alive_is_registered_again_by_its_next_pop(
    redis_client: redis.Redis,
) -> None:
    # Given a consumer a sweep forgot (its beats were late and it held nothing)
    consumer = "dropped-consumer"
    assert redis_client.zscore(consumers_key("default"), consumer) is None
    raw = envelope("service.tasks.diagnostics.noop", call_body(), task_id="dropped")
    redis_client.lpush("default", raw)
    # When it pops a message (and could die before its next beat)
    reply = redis_client.eval(POP_AND_TRACK, *pop_script_args(consumer=consumer))
    assert reply[1] == raw
    # Then it is back in the consumers set with a beat by Redis' clock, so a sweep finds
    # its held set once that beat is stale
    beat = redis_client.zscore(consumers_key("default"), consumer)
    assert beat is not None and abs(beat - time.time()) < 5
    assert redis_client.zcard(held_key("default", consumer)) == 1


def test_one_pop_takes_a_batch_records_each_and_a_restore_keeps_queue_order(
    redis_client: redis.Redis,
) -> None:
    # Given four messages in a queue (producers LPUSH, consumers pop from the right)
    raws = [envelope(RECORD, call_body("batch", str(i)), task_id=f"b{i}") for i in range(4)]
    for raw in raws:
        redis_client.lpush("default", raw)
    tags = [json.loads(raw)["properties"]["delivery_tag"] for raw in raws]
    consumer = "batch-consumer"
    # When one pop asks for three (the free prefetch slots)
    reply = redis_client.eval(POP_AND_TRACK, *pop_script_args(consumer=consumer), 3)
    # Then it returns the three oldest, in queue order, each recorded and held in pop order
    assert reply[0] == b"default"
    assert reply[1::2] == raws[:3]
    assert [t.decode() for t in reply[2::2]] == tags[:3]
    assert unacked_count(redis_client) == 3
    held = redis_client.zrange(held_key("default", consumer), 0, -1, withscores=True)
    assert [t.decode() for t, _ in held] == tags[:3]
    assert [s for _, s in held] == sorted(s for _, s in held) and len({s for _, s in held}) == 3
    # And when the consumer is dead, a sweep (newest first, each to the head) puts them
    # back so that the queue's order is as before
    redis_client.zadd(consumers_key("default"), {consumer: 1})
    keys = [consumers_key("default"), held_key("default", consumer), unacked_key("default")]
    keys += [wake_key("default"), "default"]
    argv: list[Any] = []
    for tag, _ in reversed(held):
        record = json.loads(redis_client.hget(unacked_key("default"), tag))
        argv += [tag, 1, json.dumps(record[0])]
    restored = redis_client.eval(RESTORE_HELD, len(keys), *keys, consumer, "30", "right", *argv)
    assert restored[0] == 3
    order = [json.loads(redis_client.rpop("default"))["headers"]["id"] for _ in range(4)]
    assert order == ["b0", "b1", "b2", "b3"]
