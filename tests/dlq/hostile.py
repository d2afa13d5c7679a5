"""Hand-made hostile kombu envelopes: each one broke a worker or a DLQ write once."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from envelopes import call_body, envelope_fields

NOOP = "service.tasks.diagnostics.noop"


def raw_envelope(
    body: Any,
    headers: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    task: str = NOOP,
    task_id: str | None = None,
    **top: Any,
) -> tuple[str, bytes]:
    """(task id, envelope bytes) with any field overridden, valid or not."""
    task_id = task_id or str(uuid.uuid4())
    message = envelope_fields(task, body, task_id=task_id)
    message["headers"].update(headers or {})
    message["properties"].update(properties or {})
    message.update(top)
    return task_id, json.dumps(message).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


GOOD_BODY = b64(call_body("ok"))

# name -> envelope. Each must end in the DLQ (found by its task id) and not stop the worker.
HOSTILE: dict[str, tuple[str, bytes]] = {
    "deeply nested JSON body": raw_envelope(b64(b"[" * 100_000 + b"]" * 100_000)),
    "body not valid base64": raw_envelope("!!! not base64 !!!"),
    "unknown body_encoding": raw_envelope(GOOD_BODY, properties={"body_encoding": "rot13"}),
    "body is a number": raw_envelope(12345),
    "body is an object": raw_envelope({"a": 1}),
    "body is a list": raw_envelope([1, 2]),
    "body not utf-8": raw_envelope(b64(b'[["\xff\xfe"], {}, {}]')),
    "kombu typed JSON with a bad value": raw_envelope(
        b64(b'[[{"__type__": "datetime", "__value__": "not a date"}], {}, {}]')
    ),
    "eta of wrong type": raw_envelope(GOOD_BODY, headers={"eta": 12}),
    "eta not a date": raw_envelope(GOOD_BODY, headers={"eta": "tomorrow-ish"}),
    "expires of wrong type": raw_envelope(GOOD_BODY, headers={"expires": [1]}),
    "timelimit of wrong type": raw_envelope(GOOD_BODY, headers={"timelimit": "abc"}),
    "timelimit wrong items": raw_envelope(GOOD_BODY, headers={"timelimit": ["a", {}]}),
    "retries not a number": raw_envelope(GOOD_BODY, headers={"retries": "many"}),
    "argsrepr of wrong type": raw_envelope(GOOD_BODY, headers={"argsrepr": {"x": 1}}),
    "kwargsrepr of wrong type": raw_envelope(GOOD_BODY, headers={"kwargsrepr": [1]}),
    "root_id of wrong type": raw_envelope(GOOD_BODY, headers={"root_id": {"a": 1}}),
    "parent_id of wrong type": raw_envelope(GOOD_BODY, headers={"parent_id": [1]}),
    "group of wrong type": raw_envelope(GOOD_BODY, headers={"group": {"g": 1}}),
    "origin of wrong type": raw_envelope(GOOD_BODY, headers={"origin": 5}),
    "shadow of wrong type": raw_envelope(GOOD_BODY, headers={"shadow": [1]}),
    "stamps of wrong type": raw_envelope(GOOD_BODY, headers={"stamped_headers": 5}),
    "ignore_result of wrong type": raw_envelope(GOOD_BODY, headers={"ignore_result": "yes"}),
    "priority of wrong type": raw_envelope(GOOD_BODY, properties={"priority": "urgent"}),
    "routing key of wrong type": raw_envelope(
        GOOD_BODY, properties={"delivery_info": {"exchange": 5, "routing_key": [1]}}
    ),
    "reply_to of wrong type": raw_envelope(GOOD_BODY, properties={"reply_to": {"a": 1}}),
    "correlation_id of wrong type": raw_envelope(GOOD_BODY, properties={"correlation_id": [1]}),
    "embed of wrong type": raw_envelope(b64(b'[[1], {}, "callbacks"]')),
    "embed callbacks garbage": raw_envelope(b64(b'[[1], {}, {"callbacks": 5, "chain": "x"}]')),
}
