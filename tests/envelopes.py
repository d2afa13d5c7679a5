"""Raw kombu Redis envelopes for pushing hand-made (and broken) messages into queues."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any


def envelope_fields(
    task: str,
    body: Any,
    content_type: str = "application/json",
    task_id: str | None = None,
    queue: str = "default",
) -> dict[str, Any]:
    """A kombu Redis envelope as a dict; `body` is put in as given (base64 text normally)."""
    task_id = task_id or str(uuid.uuid4())
    return {
        "body": body,
        "content-encoding": "utf-8" if content_type == "application/json" else "binary",
        "content-type": content_type,
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "retries": 0,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
        },
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def envelope(
    task: str,
    body: bytes,
    content_type: str = "application/json",
    task_id: str | None = None,
    queue: str = "default",
) -> bytes:
    encoded = base64.b64encode(body).decode()
    return json.dumps(envelope_fields(task, encoded, content_type, task_id, queue)).encode()


def call_body(*args: Any, **kwargs: Any) -> bytes:
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return json.dumps([list(args), kwargs, embed]).encode()
