"""The types Celery's worker assumes for each header and property it reads. A wrong type
used to raise deep inside Celery (strategy, request, pool) and stop the worker; here it is a
reason to dead-letter the message instead."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from service.catalog.naming import SENT_AT_HEADER


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _optional_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _time_limits(value: Any) -> bool:
    return value is None or (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(v is None or (_number(v) and v < 2**31) for v in value)
    )


def _iso_time(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    try:
        # Celery converts it to a local datetime and a timestamp; both must work.
        moment = datetime.fromisoformat(value)
        return math.isfinite(moment.timestamp()) and bool(moment.astimezone())
    except (ValueError, OverflowError, OSError):
        return False


def _optional_bool(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _str_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _optional_dict(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _sent_at(value: Any) -> bool:
    return value is None or _number(value)


HEADER_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lang": (_optional_str, "a string"),
    "retries": (lambda v: v is None or _count(v), "a count"),
    "eta": (_iso_time, "an ISO 8601 time"),
    "expires": (_iso_time, "an ISO 8601 time"),
    "timelimit": (_time_limits, "[soft, hard] seconds"),
    "root_id": (_optional_str, "a string"),
    "parent_id": (_optional_str, "a string"),
    "group": (_optional_str, "a string"),
    "group_index": (_optional_int, "an integer"),
    "origin": (_optional_str, "a string"),
    "shadow": (_optional_str, "a string"),
    "argsrepr": (_optional_str, "a string"),
    "kwargsrepr": (_optional_str, "a string"),
    "ignore_result": (_optional_bool, "a boolean"),
    "stamped_headers": (_str_list, "a list of strings"),
    "stamps": (_optional_dict, "an object"),
    "replaced_task_nesting": (_optional_int, "an integer"),
    "compression": (lambda v: v is None, "absent (compression is not used)"),
    SENT_AT_HEADER: (_sent_at, "a finite time"),
}

PROPERTY_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "priority": (lambda v: v is None or (_count(v) and v <= 255), "an integer 0..255"),
    "reply_to": (_optional_str, "a string"),
    "correlation_id": (_optional_str, "a string"),
    "body_encoding": (_optional_str, "a string"),
}


def header_problem(headers: dict[str, Any], properties: Any) -> str | None:
    for key, (valid, expected) in HEADER_TYPES.items():
        if key in headers and not valid(headers[key]):
            return f"header {key!r} must be {expected}"
    props = properties if isinstance(properties, dict) else {}
    for key, (valid, expected) in PROPERTY_TYPES.items():
        if key in props and not valid(props[key]):
            return f"property {key!r} must be {expected}"
    info = props.get("delivery_info") or {}
    if not isinstance(info, dict) or not all(
        _optional_str(info.get(k)) for k in ("exchange", "routing_key")
    ):
        return "property 'delivery_info' must hold string exchange and routing_key"
    return None
