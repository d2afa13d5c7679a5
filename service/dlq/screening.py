"""Checks a message must pass before the worker hands it to a task. Each failure names a
dead-letter reason; Celery's own default for most of these is to log and discard."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any

from service.dlq.reasons import Reason

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Problem:
    reason: Reason
    detail: str
    task_name: str | None = None

    def as_exception(self) -> ValueError:
        return ValueError(self.detail)


def screen(message: Any, tasks: Any, max_body_bytes: int) -> Problem | None:
    """None when the message is a well-formed call of a registered task."""
    headers = message.headers
    name = headers.get("task") if isinstance(headers, dict) else None
    task_name = name if isinstance(name, str) else None
    content_type = message.content_type
    if content_type != JSON_CONTENT_TYPE:
        return Problem(
            Reason.CONTENT_TYPE_REJECTED,
            f"content type {content_type!r} refused; only {JSON_CONTENT_TYPE} is accepted",
            task_name,
        )
    body = message.body
    size = len(body) if isinstance(body, bytes | str) else 0
    if size > max_body_bytes:
        return Problem(
            Reason.OVERSIZED_BODY, f"body is {size} bytes; limit {max_body_bytes}", task_name
        )
    if task_name is None or not isinstance(headers.get("id"), str):
        return Problem(Reason.INVALID_MESSAGE, "no task name/id headers (Celery protocol 2)")
    try:
        decoded = json.loads(body)
    except (ValueError, TypeError) as exc:
        return Problem(Reason.MALFORMED_BODY, f"body is not JSON: {exc}", task_name)
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
    ):
        return Problem(
            Reason.MALFORMED_BODY,
            "body is not [args, kwargs, embed] (Celery protocol 2)",
            task_name,
        )
    task = tasks.get(task_name)
    if task is None:
        return Problem(Reason.UNKNOWN_TASK, f"task {task_name!r} is not registered", task_name)
    try:
        inspect.signature(task.run).bind(*decoded[0], **decoded[1])
    except TypeError as exc:
        return Problem(Reason.INVALID_ARGUMENTS, f"{task_name}: {exc}", task_name)
    return None
