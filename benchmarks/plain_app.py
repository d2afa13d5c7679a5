"""Plain Celery, the baseline of the worker benchmarks: the same no-op and stamp tasks as
`service.tasks.diagnostics`, on kombu's stock Redis transport.

`PLAIN_SETTINGS=defaults` is Celery's library defaults (JSON, no result backend, events off,
early ack, prefetch 4); `PLAIN_SETTINGS=fleet` copies the settings `fleet worker` ships with
(late ack, reject on worker lost, prefetch of the queue, results ignored, events as
`FLEET_TASK_EVENTS`), so the two workers differ only in what celery-fleet adds."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import redis
from celery import Celery

if os.environ.get("PLAIN_FLEET_TRANSPORT"):  # diagnosis: plain Celery on fleet's transport
    from service import transport

    transport.register()

app = Celery("plain", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)
if os.environ.get("PLAIN_SETTINGS") == "fleet":
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=int(os.environ.get("PLAIN_PREFETCH", "4")),
        task_ignore_result=True,
        worker_send_task_events=os.environ.get("FLEET_TASK_EVENTS", "false") == "true",
        broker_transport_options={"unacked_restore_throttle": 1},
    )


@app.task(name="bench.noop")
def noop(value: Any = None) -> Any:
    return value


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])


@app.task(name="bench.stamp")
def stamp(key: str) -> None:
    _redis().rpush(key, time.time())
