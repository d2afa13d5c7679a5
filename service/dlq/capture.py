"""Builds dead-letter entries from a failed task (pool child), a poison message (worker main
process) or raw bytes the transport could not parse, and writes them synchronously."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
import traceback
import uuid
from typing import Any

from service.catalog.queues import CATALOG
from service.catalog.routing import queue_for_delivery
from service.config.redis_client import broker_redis
from service.config.settings import get_settings
from service.dlq import listeners
from service.dlq.access import dlq_writer
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import first_failure_key
from service.dlq.reasons import Reason
from service.dlq.safe_write import minimal_entry, safe_text, write_entry
from service.redaction import mask_text, redact_call

_FIRST_FAILURE_TTL = 7 * 86_400


def note_retry(task_id: str) -> None:
    """Remember when a task first failed, so its DLQ entry can say so after the retries."""
    broker_redis().set(first_failure_key(task_id), time.time(), nx=True, ex=_FIRST_FAILURE_TTL)


def _first_failure(task_id: str, now: float) -> float:
    raw = broker_redis().get(first_failure_key(task_id))
    return float(raw) if raw is not None else now


def _base_entry(
    entry_id: str,
    task_id: str | None,
    task_name: str,
    queue: str,
    reason: Reason,
    exc: BaseException | None,
    now: float,
) -> DLQEntry:
    settings = get_settings()
    tb = ""
    if exc is not None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        # The tail is what matters; mask after clipping so the cost is bounded.
        tb = mask_text(tb[-settings.dlq_traceback_chars :], settings.sensitive_keys)
    return {
        "id": entry_id,
        "task_id": task_id,
        "task_name": task_name,
        "queue": queue,
        "reason": str(reason),
        "exception_type": type(exc).__name__ if exc is not None else None,
        "exception_message": _clip_and_mask(str(exc), settings.sensitive_keys)
        if exc is not None
        else None,
        "traceback": tb,
        "retries": 0,
        "first_failure_at": now,
        "last_failure_at": now,
        "worker": socket.gethostname(),
        "occurrences": 1,
        "args": [],
        "kwargs": {},
        "raw_body": None,
    }


def _clip_and_mask(text: str, sensitive_keys: tuple[str, ...]) -> str:
    # Exception messages are free text: cap them (one huge message cannot bloat the DLQ or
    # stall the masking), then mask credentials and sensitive values.
    return mask_text(safe_text(text, 2000), sensitive_keys, limit=2000)


def _raw_body_view(body: bytes, sensitive_keys: tuple[str, ...]) -> str:
    """The bounded, masked text of a message body: what `fleet dlq show` prints. The
    envelope kept for replay still holds the original bytes."""
    limit = get_settings().dlq_raw_body_bytes
    text = body[:limit].decode("utf-8", "replace")
    return mask_text(text, sensitive_keys, limit=limit)


def task_envelope(
    task: Any, request: Any, args: tuple[Any, ...], kwargs: dict[str, Any], queue: str
) -> Envelope:
    """A kombu Redis envelope that re-runs this task from scratch (retries reset)."""
    spec = CATALOG.get(queue)
    headers, properties, body, _ = task.app.amqp.as_task_v2(
        request.id,
        task.name,
        args=list(args),
        kwargs=dict(kwargs),
        root_id=request.root_id,
        parent_id=request.parent_id,
        origin=request.hostname,
    )
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    priority = (request.delivery_info or {}).get("priority")
    return {
        "body": encoded,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **{k: v for k, v in properties.items() if v is not None},
            "delivery_mode": 2,
            "delivery_info": {"exchange": spec.exchange, "routing_key": spec.routing_key},
            "priority": priority if priority is not None else 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def capture_task_failure(
    task: Any,
    request: Any,
    reason: Reason,
    exc: BaseException,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Write the entry for a task that will not be retried. Raises if the write fails."""
    settings = get_settings()
    now = time.time()
    queue = queue_for_delivery(request.delivery_info)
    entry = _base_entry(request.id, request.id, task.name, queue, reason, exc, now)
    entry["first_failure_at"] = _first_failure(request.id, now)
    entry["retries"] = int(request.retries or 0)
    entry["args"], entry["kwargs"] = redact_call(task.run, args, kwargs, settings.sensitive_keys)
    try:
        envelope = task_envelope(task, request, args, kwargs, queue)
    except Exception as exc:  # arguments the JSON encoder refuses: keep the entry anyway
        envelope = {"unreplayable": safe_text(f"{type(exc).__name__}: {exc}", 300)}
    entry["id"] = write_entry(dlq_writer(), entry, envelope)
    listeners.dead_lettered(queue, task.name, str(reason))


def capture_message(
    message: Any, reason: Reason, exc: BaseException | None, task_name: str | None = None
) -> None:
    """Write the entry for a poison message received by the worker's main process."""
    settings = get_settings()
    headers = dict(getattr(message, "headers", None) or {})
    properties = dict(getattr(message, "properties", None) or {})
    delivery_info = dict(getattr(message, "delivery_info", None) or {})
    queue = queue_for_delivery(delivery_info)
    task_id = headers.get("id") if isinstance(headers.get("id"), str) else None
    name = task_name or (headers.get("task") if isinstance(headers.get("task"), str) else None)
    name = safe_text(name, 500) if name is not None else None
    tag = properties.get("delivery_tag")
    entry_id = safe_text(task_id or (tag if isinstance(tag, str) else None) or uuid.uuid4(), 500)
    now = time.time()
    entry = _base_entry(entry_id, task_id, name or "(unknown)", queue, reason, exc, now)
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    entry["raw_body"] = _raw_body_view(body, settings.sensitive_keys)
    entry["raw_body_bytes"] = len(body)
    content_type = getattr(message, "content_type", None)
    entry["content_type"] = safe_text(content_type, 200) if content_type is not None else None
    envelope = getattr(message, "_raw", None)
    if not isinstance(envelope, dict):
        envelope = {
            "body": base64.b64encode(body).decode(),
            "headers": headers,
            "properties": properties,
        }
    write_entry(dlq_writer(), entry, envelope)
    listeners.dead_lettered(queue, entry["task_name"], str(reason))


def capture_raw(item: bytes, list_key: str, exc: BaseException) -> None:
    """Write the entry for bytes in a queue's Redis list that are not a kombu message."""
    settings = get_settings()
    queue = list_key.split(settings.priority_sep, 1)[0]
    if queue not in CATALOG:
        queue = CATALOG.default_queue
    entry_id = "raw-" + hashlib.sha256(item).hexdigest()[:32]
    now = time.time()
    entry = _base_entry(entry_id, None, "(unparsed)", queue, Reason.MALFORMED_ENVELOPE, exc, now)
    entry["raw_body"] = _raw_body_view(item, settings.sensitive_keys)
    entry["raw_body_bytes"] = len(item)
    write_entry(dlq_writer(), entry, {"raw": base64.b64encode(item).decode()})
    listeners.dead_lettered(queue, entry["task_name"], str(Reason.MALFORMED_ENVELOPE))


def capture_minimal(
    reason: Reason,
    error: BaseException,
    entry_id: str | None,
    task_name: str | None,
    delivery_info: Any,
    body: bytes | None,
    envelope: Envelope | None,
) -> None:
    """The last resort when building a full entry failed for something other than Redis:
    the minimal entry (reason, raw body, the error) from plain bounded values only."""
    settings = get_settings()
    raw = body or b""
    queue, name = queue_for_delivery(delivery_info), task_name or "(unknown)"
    entry: dict[str, Any] = {
        "id": entry_id or str(uuid.uuid4()),
        "task_id": entry_id,
        "task_name": name,
        "queue": queue,
        "reason": str(reason),
        "exception_type": type(error).__name__,
        "worker": socket.gethostname(),
        "raw_body": _raw_body_view(raw, settings.sensitive_keys),
        "raw_body_bytes": len(raw),
    }
    write_entry(dlq_writer(), minimal_entry(entry, error), envelope or {"raw": _b64(raw)})
    listeners.dead_lettered(queue, name, str(reason))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
