"""Messages and dead-letter entries shaped as the broker and service.dlq.capture write them."""

from __future__ import annotations

import json
import time
from typing import Any

from envelopes import call_body
from envelopes import envelope as raw_envelope

from service.catalog.naming import SENT_AT_HEADER

NOOP = "service.tasks.diagnostics.noop"


def envelope(task_id: str, *args: Any) -> dict[str, Any]:
    """A kombu Redis envelope of a diagnostics.noop call, as the broker holds it."""
    return dict(json.loads(raw_envelope(NOOP, call_body(*args), task_id=task_id)))


def dlq_item(i: int, queue: str = "default") -> tuple[dict[str, Any], dict[str, Any]]:
    """Entry + envelope number `i`, shaped as service.dlq.capture writes them."""
    entry_id = f"id-{i:06d}"
    entry: dict[str, Any] = {
        "id": entry_id,
        "task_id": entry_id,
        "task_name": NOOP,
        "queue": queue,
        "reason": "non_retryable_error" if i % 10 else "unknown_task",
        "exception_type": "PermanentError",
        "exception_message": f"boom {i}",
        "traceback": "Traceback (most recent call last):\n  ...\nPermanentError: boom\n",
        "last_failure_at": 1_700_000_000 + i / 1000,
        "first_failure_at": 1_700_000_000,
        "retries": 0,
        "worker": "bench",
        "occurrences": 1,
        "args": [i],
        "kwargs": {},
        "raw_body": None,
    }
    return entry, envelope(entry_id, i)


def queued_message(i: int, queue: str, sent_at: float | None = None) -> bytes:
    """A small waiting message as kombu LPUSHes it, stamped like service.worker.hooks does."""
    raw = envelope(f"{queue}-{i}", i)
    raw["headers"][SENT_AT_HEADER] = time.time() if sent_at is None else sent_at
    raw["properties"]["delivery_info"]["routing_key"] = queue
    return json.dumps(raw, separators=(",", ":")).encode()
