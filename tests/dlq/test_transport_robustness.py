"""No single record, key or full Redis stops a worker or its restore sweep (real workers, real
redis-server)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from envelopes import call_body, envelope
from harness import pop_script_args, unacked_count, wait_until
from test_faults import FAST_RECOVERY, executed

from service.catalog.naming import quarantine_key, wake_key
from service.dlq.access import dlq_reader
from service.dlq.reader import Filter
from service.dlq.writer import DLQWriter
from service.transport.scripts import POP_AND_TRACK

RECORD = "service.tasks.diagnostics.record"


def record_message(run: str, item: str) -> bytes:
    return envelope(RECORD, call_body(run, item))


def test_the_sweep_restores_every_other_record_when_one_is_unreadable(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given an overdue unacked record Python cannot read, swept first (the newest overdue),
    # and an overdue record of a real message left by a dead worker
    good = json.loads(record_message("sweep", "good"))
    tag = good["properties"]["delivery_tag"]
    redis_client.hset("unacked", tag, json.dumps([good, "", "default"]))
    redis_client.zadd("unacked_index", {tag: time.time() - 100})
    redis_client.hset("unacked", "broken", b'[{"properties": {"delivery_tag": "broken"}, ')
    redis_client.zadd("unacked_index", {"broken": time.time() - 50})
    # When a worker sweeps
    worker = worker_factory("default", env={**FAST_RECOVERY, "FLEET_VISIBILITY_TIMEOUT": "5"})
    # Then the real message runs, the broken record is in the DLQ with its bytes, and
    # nothing is left in unacked
    wait_until(lambda: executed(redis_client, "sweep") == {"good": 1}, 30, message="restored")
    wait_until(lambda: unacked_count(redis_client) == 0, 30, message="unacked empty")
    entries = dlq_reader().page(Filter())
    assert [e["reason"] for e in entries] == ["malformed_envelope"]
    assert entries[0]["raw_body"].startswith('[{"properties"')
    assert "Error in timer" not in worker.log()


def test_a_wrong_type_key_under_a_queue_name_does_not_stop_the_worker(
    redis_client: redis.Redis, celery_app: Any, worker_factory: Any
) -> None:
    # Given a string where the priority-3 sub-list of `default` should be
    redis_client.set("default\x06\x163", "not a list")
    worker = worker_factory("default")
    # When tasks arrive, then they run, the worker stays up and says which key is wrong
    for i in range(3):
        celery_app.send_task(RECORD, args=["wrongtype", str(i)])
    wait_until(lambda: len(executed(redis_client, "wrongtype")) == 3, 30, message="ran")
    assert worker.alive()
    assert "wrong type" in worker.log()
    assert redis_client.get("default\x06\x163") == b"not a list"  # never deleted


def test_a_lone_surrogate_runs_once_tracked_and_leaves_nothing_behind(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a message with a lone surrogate escape, which Redis' cjson refuses and Python reads
    message = json.loads(record_message("surrogate", "x"))
    message["headers"]["x-note"] = "\ud800"
    # A second "delivery_tag" key (a header) makes the pop script decode the message with
    # cjson instead of reading the tag by string search: the path under test
    message["headers"]["delivery_tag"] = "decoy"
    raw = json.dumps(message).encode()
    assert b"\\ud800" in raw
    redis_client.lpush("default", raw)
    reply = redis_client.eval(POP_AND_TRACK, *pop_script_args(lists=["default"]))
    assert reply[2] == b"", "cjson accepted the lone surrogate: the test would prove nothing"
    # (put it back: the worker must meet it in the queue)
    redis_client.delete(quarantine_key("default"))
    redis_client.lpush("default", raw)
    # When a worker consumes it, and later another worker starts
    worker_factory("default")
    wait_until(lambda: executed(redis_client, "surrogate") == {"x": 1}, 30, message="ran")
    wait_until(lambda: unacked_count(redis_client) == 0, 10, message="acked")
    assert redis_client.hlen(quarantine_key("default")) == 0
    worker_factory("default")
    time.sleep(2)
    # Then it ran once and nothing shows up in the DLQ
    assert executed(redis_client, "surrogate") == {"x": 1}
    assert dlq_reader().count(Filter()) == 0


def test_a_full_redis_makes_the_worker_back_off_and_lose_nothing(
    redis_factory: Any, worker_factory: Any
) -> None:
    # Given a worker on a noeviction Redis
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    worker = worker_factory("default", broker_url=server.url, env=FAST_RECOVERY)
    # When 20 tasks arrive in the same instant Redis becomes full: the pops' unacked writes,
    # the tasks' own writes, their DLQ writes and the requeues all meet a full Redis
    with client.pipeline() as pipe:
        for i in range(20):
            pipe.lpush("default", record_message("oom", str(i)))
        pipe.lpush(wake_key("default"), "1")
        pipe.config_set("maxmemory", 1)
        pipe.execute()
    time.sleep(8)
    assert worker.alive(), worker.log()[-3000:]
    assert unacked_count(client) + client.llen("default") == 20  # nothing lost so far
    # Then, once Redis has room again, every task ran or, where its own write met the full
    # Redis (an exception in the task), is in the DLQ with its arguments; nothing in flight
    client.config_set("maxmemory", 0)
    dlq = DLQWriter(client)

    def accounted() -> set[str]:
        dead = {str(e["args"][-1]) for e in dlq.reader.iter_entries(Filter()) if e["args"]}
        return set(executed(client, "oom")) | dead

    wanted = {str(i) for i in range(20)}
    try:
        wait_until(lambda: accounted() == wanted, 60, message="every task ran or is in the DLQ")
    except AssertionError:
        missing = sorted(wanted - accounted(), key=int)
        keys = {k.decode(): client.type(k).decode() for k in client.scan_iter("*")}
        log = worker.log().splitlines()
        lines = [line for line in log if any(f"'{m}'" in line for m in missing)]
        raise AssertionError(
            f"missing {missing}; unacked {unacked_count(client)}; list "
            f"{client.llen('default')}; keys {keys}; its log lines: {lines[-12:]}"
        ) from None
    wait_until(lambda: unacked_count(client) == 0, 30, message="unacked drained")
    assert worker.alive()
    assert "Unrecoverable error" not in worker.log()


def test_an_idle_worker_blocks_instead_of_polling_and_drops_stale_tokens(
    redis_client: redis.Redis, celery_app: Any, worker_factory: Any
) -> None:
    # Given a worker that has drained a burst of tasks (one wake token each)
    worker_factory("default")
    for i in range(30):
        celery_app.send_task(RECORD, args=["idle", str(i)])
    wait_until(lambda: len(executed(redis_client, "idle")) == 30, 30, message="burst ran")
    # Then the poll that found the queue empty dropped the tokens left over
    wait_until(lambda: redis_client.llen(wake_key("default")) == 0, 10, message="no tokens")
    # And the idle worker waits in one blocking call, costing Redis (almost) nothing
    wait_until(
        lambda: any(c.get("cmd") == "blpop" for c in redis_client.client_list()),
        10,
        message="worker blocked in BLPOP",
    )
    redis_client.config_resetstat()
    time.sleep(6)
    calls = {
        name: stats["calls"]
        for name, stats in redis_client.info("commandstats").items()
        if name not in ("cmdstat_config|resetstat", "cmdstat_info")
    }
    # (a one-off script load and binding refresh aside; polling every 0.1 s was ~60/s)
    assert sum(calls.values()) <= 20, sorted(calls.items())
    # And a new task is picked up at once, without waiting for an idle timeout
    started = time.monotonic()
    celery_app.send_task(RECORD, args=["idle", "late"])
    wait_until(lambda: "late" in executed(redis_client, "idle"), 10, message="picked up")
    assert time.monotonic() - started < 2


def test_an_idle_worker_stops_at_once_however_long_its_idle_wait(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given an idle worker blocked in a wait far longer than any pod's patience
    worker = worker_factory("default", env={"FLEET_IDLE_POLL_SECONDS": "300"})
    wait_until(
        lambda: any(c.get("cmd") == "blpop" for c in redis_client.client_list()),
        20,
        message="worker blocked in BLPOP",
    )
    # When it gets SIGTERM (a pod stopping, a rolling update)
    started = time.monotonic()
    worker.stop(timeout=120)
    # Then its warm shutdown does not wait for the idle wait to end (kombu's close reads
    # the pending reply; stock kombu's 1 s BRPOP hid that)
    assert not worker.alive()
    assert time.monotonic() - started < 60


def test_a_queue_consumed_during_an_idle_wait_is_served_at_once(
    redis_client: redis.Redis, celery_app: Any, worker_factory: Any
) -> None:
    # Given a worker with Celery's default start-up (mingle on): it first consumes mingle's
    # reply queue alone, and its task queue only after the first idle wait has begun
    worker_factory("default", env={"FLEET_IDLE_POLL_SECONDS": "300"}, mingle=True)
    # When a task is sent once it is ready
    started = time.monotonic()
    celery_app.send_task(RECORD, args=["mingle", "first"])
    # Then it runs at once, not after the idle wait on the reply queue ends
    wait_until(lambda: "first" in executed(redis_client, "mingle"), 60, message="picked up")
    assert time.monotonic() - started < 30
