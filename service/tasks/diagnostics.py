"""Diagnostic tasks (routed to `default`) used by smoke tests, `fleet dev` and benchmarks."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import ConnectionError as RedisConnectionError

from service.config.redis_client import broker_redis
from service.errors import PermanentTaskError, TransientTaskError
from service.tasks.base import FleetTask

_RECORD_TTL = 86_400


@shared_task(base=FleetTask, name="service.tasks.diagnostics.noop")
def noop(value: Any = None) -> Any:
    """Return the argument unchanged."""
    return value


@shared_task(base=FleetTask, name="service.tasks.diagnostics.fail")
def fail(message: str = "diagnostic failure") -> None:
    """Raise a permanent error: no retry, straight to the dead-letter queue."""
    raise PermanentTaskError(message)


@shared_task(base=FleetTask, name="service.tasks.diagnostics.sleep")
def sleep(seconds: float, marker: str | None = None) -> float:
    """Sleep, then (optionally) record completion under `marker` (shutdown tests)."""
    time.sleep(seconds)
    if marker:
        broker_redis().rpush(f"fleet:diag:done:{marker}", time.time())
    return seconds


@shared_task(
    base=FleetTask,
    name="service.tasks.diagnostics.record",
    # A broker blip is transient for a task whose only work is a Redis write.
    autoretry_for=(TransientTaskError, RedisConnectionError),
    max_retries=10,
    retry_backoff=1,
)
def record(run_key: str, item: str, delay: float = 0.0) -> str:
    """Count one execution of `item` in a Redis hash (loss/duplication tests)."""
    time.sleep(delay)
    client = broker_redis()
    with client.pipeline() as pipe:
        pipe.hincrby(f"fleet:diag:runs:{run_key}", item, 1)
        pipe.expire(f"fleet:diag:runs:{run_key}", _RECORD_TTL)
        pipe.execute()
    return item


@shared_task(
    base=FleetTask,
    name="service.tasks.diagnostics.flaky",
    bind=True,
    max_retries=3,
    retry_backoff=1,
    retry_backoff_max=8,
    retry_jitter=False,
)
def flaky(self: FleetTask, run_key: str, failures: int) -> int:
    """Fail transiently `failures` times, recording each attempt's time, then succeed."""
    client = broker_redis()
    client.rpush(f"fleet:diag:attempts:{run_key}", time.time())
    client.expire(f"fleet:diag:attempts:{run_key}", _RECORD_TTL)
    if self.request.retries < failures:
        raise TransientTaskError(f"attempt {self.request.retries} failed on purpose")
    return int(self.request.retries)


@shared_task(base=FleetTask, name="service.tasks.diagnostics.retry_later", bind=True, max_retries=1)
def retry_later(self: FleetTask, run_key: str, countdown: float) -> int:
    """Record each attempt's time; the first attempt retries `countdown` seconds later."""
    client = broker_redis()
    client.rpush(f"fleet:diag:attempts:{run_key}", time.time())
    client.expire(f"fleet:diag:attempts:{run_key}", _RECORD_TTL)
    if self.request.retries == 0:
        raise self.retry(countdown=countdown)
    return int(self.request.retries)


@shared_task(base=FleetTask, name="service.tasks.diagnostics.rate_limited", rate_limit="5/s")
def rate_limited(run_key: str) -> None:
    """Record start times; Celery's per-worker token bucket allows 5 per second."""
    broker_redis().rpush(f"fleet:diag:rate:{run_key}", time.time())


@shared_task(base=FleetTask, name="service.tasks.diagnostics.busy", bind=True)
def busy(self: FleetTask, seconds: float, run_key: str) -> str:
    """Run for `seconds` in small steps; report whether the soft time limit cut it short."""
    client = broker_redis()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
    except SoftTimeLimitExceeded:
        # Clean up and report, then re-raise so the task is recorded as failed.
        client.rpush(f"fleet:diag:soft:{run_key}", "soft_time_limit")
        raise
    client.rpush(f"fleet:diag:soft:{run_key}", "completed")
    return "completed"


@shared_task(base=FleetTask, name="service.tasks.diagnostics.hang")
def hang(seconds: float, marker: str | None = None) -> float:
    """Ignore the soft time limit and keep going: only the hard limit can stop it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue
    if marker:
        broker_redis().rpush(f"fleet:diag:done:{marker}", time.time())
    return seconds


@shared_task(base=FleetTask, name="service.tasks.diagnostics.until_fixed")
def until_fixed(run_key: str, password: str | None = None) -> str:
    """Fail permanently until `fleet:diag:fixed:<run_key>` exists (a deployed fix), then
    record the call; `password` shows that replay keeps values the DLQ view masks."""
    client = broker_redis()
    if not client.exists(f"fleet:diag:fixed:{run_key}"):
        raise PermanentTaskError(f"{run_key} is not fixed yet")
    client.rpush(f"fleet:diag:fixed-runs:{run_key}", password or "")
    return run_key


@shared_task(base=FleetTask, name="service.tasks.diagnostics.stamp")
def stamp(key: str) -> None:
    """Record when the task started running (pickup-latency benchmark)."""
    broker_redis().rpush(key, time.time())


@shared_task(base=FleetTask, name="service.tasks.diagnostics.record_call", bind=True)
def record_call(self: FleetTask, *args: Any, **kwargs: Any) -> None:
    """Count one execution under the task id, whatever the arguments (fuzz tests)."""
    client = broker_redis()
    with client.pipeline() as pipe:
        pipe.hincrby("fleet:diag:calls", str(self.request.id), 1)
        pipe.expire("fleet:diag:calls", _RECORD_TTL)
        pipe.execute()
