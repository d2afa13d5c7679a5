"""Checks a message must pass before the worker hands it to a task. Each failure names a
dead-letter reason; Celery's own default for most of these is to log and discard, and for
some (a header of the wrong type, an ETA that is not a date) an exception that stopped the
worker. The checks mirror what Celery's request, its strategy and the pool child read, so a
message that passes here cannot fail there for its shape."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from kombu.serialization import loads

from service.dlq.headers import header_problem
from service.dlq.reasons import Reason

JSON_CONTENT_TYPE = "application/json"
_EMBED_LISTS = ("callbacks", "errbacks", "chain")


@dataclass(frozen=True)
class Problem:
    reason: Reason
    detail: str
    task_name: str | None = None

    def as_exception(self) -> ValueError:
        return ValueError(self.detail)


@dataclass(frozen=True)
class Call:
    """A message that passed: its decoded positional and keyword arguments."""

    args: list[Any]
    kwargs: dict[str, Any]


def screen(message: Any, tasks: Any, max_body_bytes: int) -> Problem | None:
    """None when the message is a well-formed call of a registered task."""
    result = screen_call(message, tasks, max_body_bytes)
    return result if isinstance(result, Problem) else None


def screen_call(message: Any, tasks: Any, max_body_bytes: int) -> Problem | Call:
    """The decoded call of a well-formed message of a registered task, or its Problem. An
    ETA may be any distance ahead: the worker holds such a message as long as it lives."""
    headers = message.headers
    name = headers.get("task") if isinstance(headers, dict) else None
    task_name = name if isinstance(name, str) else None
    content_type = message.content_type
    if content_type != JSON_CONTENT_TYPE:
        return Problem(
            Reason.CONTENT_TYPE_REJECTED,
            f"content type {content_type!r:.100} refused; only {JSON_CONTENT_TYPE} is accepted",
            task_name,
        )
    body = message.body
    if not isinstance(body, bytes | str):
        return Problem(Reason.MALFORMED_BODY, "body is not a string", task_name)
    if len(body) > max_body_bytes:
        return Problem(
            Reason.OVERSIZED_BODY, f"body is {len(body)} bytes; limit {max_body_bytes}", task_name
        )
    if task_name is None or not isinstance(headers.get("id"), str):
        return Problem(Reason.INVALID_MESSAGE, "no task name/id headers (Celery protocol 2)")
    bad_header = header_problem(headers, getattr(message, "properties", None))
    if bad_header is not None:
        return Problem(Reason.INVALID_MESSAGE, bad_header, task_name)
    try:
        # kombu's decoder, exactly as the pool child will decode it (typed JSON included).
        decoded = loads(body, content_type, message.content_encoding, accept={JSON_CONTENT_TYPE})
    except Exception as exc:  # a body may break a decoder in many ways (RecursionError...)
        detail = f"body is not JSON: {type(exc).__name__}: {exc!s:.200}"
        return Problem(Reason.MALFORMED_BODY, detail, task_name)
    shape = _shape_problem(decoded)
    if shape is not None:
        return Problem(Reason.MALFORMED_BODY, shape, task_name)
    task = tasks.get(task_name)
    if task is None:
        return Problem(Reason.UNKNOWN_TASK, f"task {task_name!r:.300} is not registered", task_name)
    try:
        inspect.signature(task.run).bind(*decoded[0], **decoded[1])
    except TypeError as exc:
        return Problem(Reason.INVALID_ARGUMENTS, f"{task_name}: {exc}", task_name)
    return Call(decoded[0], decoded[1])


def _shape_problem(decoded: Any) -> str | None:
    if not (
        isinstance(decoded, list)
        and len(decoded) == 3
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
    ):
        return "body is not [args, kwargs, embed] (Celery protocol 2)"
    embed = decoded[2]
    if embed is None:
        return None
    if not isinstance(embed, dict):
        return "body's embed (callbacks, chain...) is not an object"
    for key in _EMBED_LISTS:
        value = embed.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, dict) for item in value)
        ):
            return f"body's embed {key} is not a list of signatures"
    if embed.get("chord") is not None and not isinstance(embed["chord"], dict):
        return "body's embed chord is not a signature"
    return None
