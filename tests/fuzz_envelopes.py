"""Hypothesis strategies that mutate real kombu envelopes of a real task call: field types,
body encodings, nesting, sizes, header and property values, and JSON dialect edge cases
(NaN, huge exponents, lone surrogates, duplicate keys, a BOM)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

TASK = "service.tasks.diagnostics.record_call"
QUEUE = "default"
CALLS_KEY = "fleet:diag:calls"

HEADERS = (
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
    "stamped_headers",
    "stamps",
    "replaced_task_nesting",
    "fleet_sent_at",
    "compression",
)
PROPERTIES = (
    "correlation_id",
    "reply_to",
    "delivery_mode",
    "delivery_info",
    "priority",
    "body_encoding",
    "delivery_tag",
)
TOP_LEVEL = ("body", "content-encoding", "content-type", "headers", "properties")

# Lone surrogates: Python's JSON accepts them, Redis' cjson does not; the transport's pop
# tracks such a message before delivery, so it runs once and leaves nothing behind.
_SURROGATES = ["\ud800", "x\udfffy"]
_odd_text = st.sampled_from(
    ["", "[/bold]", "password=hunter2", "\x00", "é" * 3, "1e400", "NaN", *_SURROGATES]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | _odd_text
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Case:
    marker: str
    raw: bytes
    task_id: str | None  # the id a run is counted under, when the header stays a string
    description: list[str]


def _base(marker: str) -> dict[str, Any]:
    call = [
        ["fuzz", marker],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    return {
        "body": base64.b64encode(json.dumps(call).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": TASK,
            "id": marker,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": marker,
            "parent_id": None,
            "argsrepr": "('fuzz',)",
            "kwargsrepr": "{}",
            "origin": "fuzz@test",
            "ignore_result": False,
            "fleet_sent_at": 1.0,
        },
        "properties": {
            "correlation_id": marker,
            "reply_to": None,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": f"{marker}-tag",
        },
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def body_texts(draw: st.DrawFn, marker: str) -> bytes:
    """A body for the task call, valid or not, as the bytes a producer would send."""
    kind = draw(
        st.sampled_from(["call", "args", "kwargs", "embed", "nested", "large", "raw", "value"])
    )
    embed: Any = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    args: Any = ["fuzz", marker]
    kwargs: Any = {}
    if kind == "args":
        args = draw(json_values)
    elif kind == "kwargs":
        kwargs = draw(json_values)
    elif kind == "embed":
        embed = draw(json_values)
    elif kind == "nested":
        depth = draw(st.integers(min_value=1, max_value=5000))
        return (
            b'[["fuzz", '
            + b"[" * depth
            + json.dumps(marker).encode()
            + b"]" * depth
            + b"], {}, {}]"
        )
    elif kind == "large":
        size = draw(st.sampled_from([1_000, 60_000, 70_000, 300_000]))
        kwargs = {"pad": "p" * size}
        args = ["fuzz", marker]
    elif kind == "raw":
        return draw(st.binary(max_size=200))
    elif kind == "value":
        return json.dumps(draw(json_values)).encode()
    return json.dumps([args, kwargs, embed]).encode()


@st.composite
def cases(draw: st.DrawFn) -> Case:
    marker = f"fz-{uuid.uuid4().hex}"
    message = _base(marker)
    description: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from(["header", "property", "top", "body", "encoding", "drop"]))
        if target == "header" and isinstance(message["headers"], dict):
            key = draw(st.sampled_from(HEADERS) | st.text(max_size=8))
            value = draw(json_values)
            if key == "id" and isinstance(value, str):
                value = f"{marker}-{value}"  # stays unique, so runs can be counted
            message["headers"][key] = value
            description.append(f"headers[{key!r}]={value!r:.80}")
        elif target == "property" and isinstance(message["properties"], dict):
            key = draw(st.sampled_from(PROPERTIES))
            value = draw(json_values)
            message["properties"][key] = value
            description.append(f"properties[{key!r}]={value!r:.80}")
        elif target == "top":
            key = draw(st.sampled_from(TOP_LEVEL))
            value = draw(json_values)
            message[key] = value
            description.append(f"{key}={value!r:.80}")
        elif target == "body" and isinstance(message["properties"], dict):
            body = draw(body_texts(marker))
            encoding = draw(st.sampled_from(["base64", "base64", "utf-8", None, "rot13"]))
            message["properties"]["body_encoding"] = encoding
            message["body"] = (
                _b64(body) if encoding == "base64" else body.decode("utf-8", "replace")
            )
            description.append(f"body({encoding})={body[:80]!r}")
        elif target == "encoding":
            message["content-encoding"] = draw(st.sampled_from(["binary", "utf-16", "nope", None]))
            description.append(f"content-encoding={message['content-encoding']!r}")
        elif target == "drop":
            section = draw(st.sampled_from(["headers", "properties"]))
            keys = sorted(message[section]) if isinstance(message[section], dict) else []
            if keys:
                key = draw(st.sampled_from(keys))
                del message[section][key]
                description.append(f"del {section}[{key!r}]")
    raw = json.dumps(message).encode()
    dialect = draw(
        st.sampled_from(["plain", "plain", "plain", "bom", "duplicate", "exponent", "spaces"])
    )
    if dialect == "bom":
        raw = "\ufeff".encode() + raw
    elif dialect == "duplicate":
        raw = raw.replace(b'{"body"', b'{"body": 0, "body"', 1)
    elif dialect == "exponent":
        raw = raw.replace(b'"retries": 0', b'"retries": 1e400', 1)
    elif dialect == "spaces":
        raw = b"\n \t" + raw + b" \n"
    if dialect != "plain":
        description.append(f"dialect={dialect}")
    headers = message.get("headers")
    task_id = headers.get("id") if isinstance(headers, dict) else None
    return Case(marker, raw, task_id if isinstance(task_id, str) else None, description)
