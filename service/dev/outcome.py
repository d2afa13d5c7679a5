"""What became of each designed task, asked of the systems that know: the DLQ store for the
designed failures (entry, reason, queue), Celery's result backend for the rest."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery

from service.catalog.queues import CATALOG
from service.dev.workload import Designed
from service.dlq.reader import DLQReader
from service.errors import DLQError


def outcome_of(item: Designed, dlq: DLQReader, app: Celery) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": item.path,
        "task_id": item.task_id,
        "queue": item.queue,
        "expect": item.expect,
    }
    try:
        entry = dlq.find(item.task_id, CATALOG.names)
    except DLQError:
        entry = None
    except redis.RedisError as exc:
        return row | {"outcome": f"unknown ({type(exc).__name__})", "as_designed": False}
    if entry is not None:
        outcome = f"dead-lettered: {entry['reason']}"
        if entry["queue"] != item.queue:
            outcome += f" (from queue {entry['queue']})"
        designed = entry["reason"] == item.expect and entry["queue"] == item.queue
        return row | {"outcome": outcome, "as_designed": designed}
    if item.expect != "success":
        return row | {"outcome": "not (yet) in the DLQ", "as_designed": False}
    try:
        state = str(app.AsyncResult(item.task_id).state)
    except Exception as exc:  # the result backend is down: say so, do not guess
        return row | {"outcome": f"unknown ({type(exc).__name__})", "as_designed": False}
    return row | {"outcome": state.lower(), "as_designed": state == "SUCCESS"}


def outcomes(designed: list[Designed], dlq: DLQReader, app: Celery) -> list[dict[str, Any]]:
    return [outcome_of(item, dlq, app) for item in designed]
