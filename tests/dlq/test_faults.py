"""Fault injection with real processes: nothing is lost when a worker is SIGKILLed, when
Redis restarts, or when a worker is told to stop mid-task.

Bound for R1: a dead worker's messages come back after the dead-owner timeout (its last
heartbeat in Redis is older) + one heartbeat of a live worker of the queue (a quarter of the
timeout), which finds and restores them. Here 5 s + 1.25 s, with the shipped visibility
timeout (an hour): the visibility timeout plays no part."""

from __future__ import annotations

import base64
import json
import signal
import time
from typing import Any

import pytest
import redis
from fault_bodies import RECORD, executed, nothing_lost_through_a_redis_restart
from harness import Worker, unacked_count, wait_until

from service.app_factory import create_app
from service.catalog.naming import consumers_key, held_key, unacked_key
from service.config.settings import FleetSettings
from service.dlq.keys import index_key

DEAD_OWNER_TIMEOUT_S = 5
FAST_RECOVERY = {
    "FLEET_DEAD_OWNER_TIMEOUT_SECONDS": str(DEAD_OWNER_TIMEOUT_S),
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
}
SWEEP_S = DEAD_OWNER_TIMEOUT_S / 4  # one heartbeat interval
# Dead-owner timeout + one beat, plus room for a loaded machine to run what comes back.
RECOVERY_BOUND_S = DEAD_OWNER_TIMEOUT_S + SWEEP_S + 15


def whereabouts(client: redis.Redis, run: str, total: int) -> str:
    """Where the tasks that did not run are: for the failure message."""
    missing = sorted(set(map(str, range(total))) - set(executed(client, run)), key=int)
    waiting = {key.decode(): client.llen(key) for key in client.keys("default*")}
    return (
        f"missing {missing[:20]} ({len(missing)}); lists {waiting}; "
        f"unacked {unacked_count(client)}; dlq {client.zcard(index_key('default'))}; "
        f"consumers {client.zrange(consumers_key('default'), 0, -1, withscores=True)}"
    )


def consumer_of(client: redis.Redis, worker: Worker) -> str:
    """The consumer id of a worker's main process (host.pid.random)."""
    ids = [c.decode() for c in client.zrange(consumers_key("default"), 0, -1)]
    return next(c for c in ids if c.split(".")[-2] == str(worker.process.pid))


def held_items(client: redis.Redis, consumer: str) -> set[str]:
    """The `record` items a consumer holds (popped, not acked)."""
    tags = client.zrange(held_key("default", consumer), 0, -1)
    items = set()
    for raw in client.hmget(unacked_key("default"), tags):
        if raw is not None:
            message = json.loads(raw)[0]
            args = json.loads(base64.b64decode(message["body"]))[0]
            items.add(args[1])
    return items


@pytest.mark.parametrize("kill", ["process_group", "main_process"])
def test_r1_sigkill_of_a_worker_returns_its_tasks_within_the_dead_owner_bound(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any, kill: str
) -> None:
    # Given two workers (shipped visibility timeout) and 500 idempotent tasks; the doomed
    # one prefetches generously, so it holds several tasks when it dies
    doomed = worker_factory("default", "--prefetch-multiplier", "8", env=FAST_RECOVERY)
    worker_factory("default", env=FAST_RECOVERY, concurrency=2)
    for i in range(500):
        celery_app.send_task("service.tasks.diagnostics.record", args=["r1", str(i), 0.02])
    # When the doomed worker (its whole process group, or its main process alone) is
    # SIGKILLed mid-run
    wait_until(lambda: len(executed(redis_client, "r1")) >= 100, 60, message="100 done")
    assert len(executed(redis_client, "r1")) < 500, "the kill must happen mid-run"
    consumer = consumer_of(redis_client, doomed)
    if kill == "process_group":
        doomed.kill_tree()
    else:
        doomed.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    held = held_items(redis_client, consumer)
    assert held, "the doomed worker held nothing: the test would prove nothing"
    # Then every task it held runs again within dead-owner timeout + one sweep (+ slack)
    try:
        wait_until(
            lambda: held <= set(executed(redis_client, "r1")),
            RECOVERY_BOUND_S + 30,
            interval=0.2,
            message="the held tasks ran",
        )
    except AssertionError:
        raise AssertionError(whereabouts(redis_client, "r1", 500)) from None
    assert time.monotonic() - killed_at < RECOVERY_BOUND_S
    # And every task ran, none lost, and the dead consumer is forgotten
    wait_until(
        lambda: len(executed(redis_client, "r1")) == 500,
        60,
        interval=0.5,
        message="all 500 executed",
    )
    assert set(executed(redis_client, "r1")) == {str(i) for i in range(500)}
    wait_until(lambda: unacked_count(redis_client) == 0, 30, message="unacked drained")
    assert redis_client.zscore(consumers_key("default"), consumer) is None
    assert not redis_client.exists(held_key("default", consumer))


def test_r2_redis_restart_loses_nothing(
    redis_factory: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Redis with AOF and two workers on it
    server = redis_factory(appendonly=True)
    client = redis.Redis.from_url(server.url)
    worker_factory("default", broker_url=server.url, env=FAST_RECOVERY, concurrency=2)
    worker_factory("default", broker_url=server.url, env=FAST_RECOVERY, concurrency=2)
    # Celery reads CELERY_BROKER_URL from the environment over its config.
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    producer = create_app(FleetSettings())
    # When redis-server restarts in the middle of the run, then every task runs
    nothing_lost_through_a_redis_restart(
        client,
        lambda args: producer.send_task(RECORD, args=args),
        server.restart,
        lambda: whereabouts(client, "r2", 300),
        RECOVERY_BOUND_S + 60,
    )


def test_r3_sigterm_finishes_the_running_task(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker running a 5 s task
    worker = worker_factory("default", concurrency=1)
    celery_app.send_task("service.tasks.diagnostics.sleep", args=[5, "r3"])
    wait_until(
        lambda: "diagnostics.sleep" in worker.log() and "received" in worker.log(),
        15,
        message="task received",
    )
    time.sleep(1)
    # When it gets SIGTERM (Kubernetes scale-down / rollout)
    worker.signal(signal.SIGTERM)
    worker.process.wait(30)
    # Then the task completed before the process exited
    assert redis_client.llen("fleet:diag:done:r3") == 1
    assert "Warm shutdown" in worker.log()
