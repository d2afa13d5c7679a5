"""Fault injection with real processes: nothing is lost when a worker is SIGKILLed, when
Redis restarts, or when a worker is told to stop mid-task.

Bound for R1/R2: kombu returns a dead worker's unacked messages after
`visibility_timeout` + one `unacked_restore_interval` sweep (we set throttle 1; stock
kombu sweeps only every 10 x 10 s). Here: 5 s + 1 s, so we allow 30 s end to end."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import redis
from harness import wait_until

from service.app_factory import create_app
from service.config.settings import FleetSettings
from service.dlq.keys import index_key

FAST_RECOVERY = {
    "FLEET_ALLOW_SHORT_VISIBILITY_TIMEOUT": "true",
    "FLEET_VISIBILITY_TIMEOUT": "5",
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
}
RECOVERY_BOUND_S = 30


def executed(client: redis.Redis, run: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(f"fleet:diag:runs:{run}").items()}


def whereabouts(client: redis.Redis, run: str, total: int) -> str:
    """Where the tasks that did not run are: for the failure message."""
    missing = sorted(set(map(str, range(total))) - set(executed(client, run)), key=int)
    waiting = {key.decode(): client.llen(key) for key in client.keys("default*")}
    return (
        f"missing {missing[:20]} ({len(missing)}); lists {waiting}; "
        f"unacked {client.hlen('unacked')}; dlq {client.zcard(index_key('default'))}; "
        f"mutex ttl {client.ttl('unacked_mutex')}"
    )


def test_r1_sigkill_of_a_worker_loses_nothing(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given two workers and 500 idempotent tasks
    doomed = worker_factory("default", env=FAST_RECOVERY, concurrency=2)
    worker_factory("default", env=FAST_RECOVERY, concurrency=2)
    for i in range(500):
        celery_app.send_task("service.tasks.diagnostics.record", args=["r1", str(i), 0.02])
    # When one worker's main process is SIGKILLed mid-run
    wait_until(lambda: len(executed(redis_client, "r1")) >= 100, 60, message="100 done")
    assert len(executed(redis_client, "r1")) < 500, "the kill must happen mid-run"
    doomed.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    # Then every task runs at least once, within the stated bound
    try:
        wait_until(
            lambda: len(executed(redis_client, "r1")) == 500,
            RECOVERY_BOUND_S + 60,
            interval=0.5,
            message="all 500 executed",
        )
    except AssertionError:
        raise AssertionError(whereabouts(redis_client, "r1", 500)) from None
    assert time.monotonic() - killed_at < RECOVERY_BOUND_S + 30
    assert set(executed(redis_client, "r1")) == {str(i) for i in range(500)}
    wait_until(lambda: redis_client.hlen("unacked") == 0, 30, message="unacked drained")


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
    for i in range(300):
        producer.send_task("service.tasks.diagnostics.record", args=["r2", str(i), 0.02])
    # When redis-server restarts in the middle of the run
    wait_until(lambda: len(executed(client, "r2")) >= 60, 60, message="60 done")
    assert len(executed(client, "r2")) < 300, "the restart must happen mid-run"
    server.restart()
    # Then the workers reconnect and every task runs
    try:
        wait_until(
            lambda: len(executed(client, "r2")) == 300,
            RECOVERY_BOUND_S + 60,
            interval=0.5,
            message="all 300 executed",
        )
    except AssertionError:
        raise AssertionError(whereabouts(client, "r2", 300)) from None
    assert set(executed(client, "r2")) == {str(i) for i in range(300)}


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
