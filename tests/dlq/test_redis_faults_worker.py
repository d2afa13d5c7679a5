"""Issue 17 with real workers: a full Redis (maxmemory, noeviction) and a CLIENT PAUSE
longer than the old socket timeout neither kill a worker nor dead-letter a task; expired
messages are dead-lettered with reason `expired`."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from harness import unacked_count, wait_until

from service.app_factory import create_app
from service.config.settings import FleetSettings
from service.dlq.access import dlq_reader
from service.dlq.keys import entries_key, index_key
from service.dlq.reader import Filter

RECORD = "service.tasks.diagnostics.record"
FAST_RECOVERY = {
    "FLEET_ALLOW_SHORT_VISIBILITY_TIMEOUT": "true",
    "FLEET_VISIBILITY_TIMEOUT": "20",
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
    "FLEET_IDLE_POLL_SECONDS": "2",
}


def executed(client: redis.Redis, run: str) -> set[str]:
    return {k.decode() for k in client.hkeys(f"fleet:diag:runs:{run}")}


def producer_for(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", url)
    return create_app(FleetSettings())


def test_a_full_redis_kills_no_worker_and_dead_letters_nothing(
    redis_factory: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two workers on a private Redis and a stream of tasks
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    workers = [
        worker_factory("default", broker_url=server.url, env=FAST_RECOVERY, concurrency=2)
        for _ in range(2)
    ]
    producer = producer_for(server.url, monkeypatch)
    for i in range(120):
        producer.send_task(RECORD, args=["full", str(i), 0.05])
    wait_until(lambda: len(executed(client, "full")) >= 10, 30, message="10 done")
    # When Redis is full for 12 s (acks, retries and DLQ writes refused)
    client.config_set("maxmemory", 1)
    time.sleep(12)
    # Then no worker died
    assert all(w.alive() for w in workers), [w.log()[-3000:] for w in workers if not w.alive()]
    client.config_set("maxmemory", 0)
    # And once Redis takes writes again, every task runs, none is dead-lettered
    wait_until(lambda: len(executed(client, "full")) == 120, 90, message="all 120 ran")
    assert client.zcard(index_key("default")) == 0
    # And a new task is picked up within seconds
    producer.send_task(RECORD, args=["canary", "c"])
    wait_until(lambda: executed(client, "canary") == {"c"}, 10, message="canary ran")
    # (Which writes Redis refused depends on the commands: the pop and the ack only remove,
    # which a full noeviction Redis allows; the tasks' own HSETs and the heartbeats are refused
    # and retried.)
    wait_until(lambda: unacked_count(client) == 0, 40, message="acks written")


def test_a_client_pause_longer_than_the_old_socket_timeout_dead_letters_nothing(
    redis_factory: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker running tasks that write to Redis
    server = redis_factory()
    client = redis.Redis.from_url(server.url)
    worker = worker_factory("default", broker_url=server.url, env=FAST_RECOVERY, concurrency=4)
    producer = producer_for(server.url, monkeypatch)
    for i in range(40):
        producer.send_task(RECORD, args=["pause", str(i), 0.2])
    wait_until(lambda: len(executed(client, "pause")) >= 4, 30, message="4 done")
    # When Redis pauses every client for 15 s (an in-cluster Redis being stopped pauses
    # writes for 10 s; an operator's CLIENT PAUSE pauses reads too)
    client.execute_command("CLIENT", "PAUSE", 15_000)
    time.sleep(16)
    # Then every task runs and none is dead-lettered
    wait_until(lambda: len(executed(client, "pause")) == 40, 60, message="all 40 ran")
    assert client.zcard(index_key("default")) == 0
    assert worker.alive()


def test_an_expired_message_is_dead_lettered_with_reason_expired(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a message that expires before a worker takes it
    sent = celery_app.send_task("service.tasks.diagnostics.noop", args=[1], expires=1)
    time.sleep(1.5)
    # When a worker starts
    worker_factory("default")
    # Then it is in the DLQ with reason expired, not silently dropped
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == 1, 20, message="expired entry")
    entry = dlq.find(sent.id, ("default",))
    assert entry["reason"] == "expired"
    assert entry["exception_type"] == "TaskExpired"
    wait_until(lambda: unacked_count(redis_client) == 0, 10, message="acked")


def test_a_task_whose_entry_the_dlq_refuses_is_parked_and_not_run_again(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a foreign value at the default queue's DLQ entries key (every form of an entry
    # for that queue is refused for its content)
    redis_client.set(entries_key("default"), "not a hash")
    worker = worker_factory("default")
    # When a task of that queue fails for good
    sent = celery_app.send_task("service.tasks.diagnostics.fail", args=["boom"])
    # Then its message is parked, acknowledged, and not run again (it used to loop forever)
    wait_until(lambda: redis_client.hlen("fleet:dlq:parked") == 1, 30, message="parked")
    time.sleep(4)
    assert worker.log().count(f"diagnostics.fail[{sent.id}] received") == 1
    assert unacked_count(redis_client) == 0
    assert sum(redis_client.llen(k) for k in redis_client.keys("default*")) == 0
