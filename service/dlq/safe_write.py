"""DLQ writes that cannot fail for an entry's content.

An entry is built from message data, and message data is hostile: a non-finite float that
Redis' cjson cannot encode, nesting deeper than cjson allows, an id that already names an
entry of another task. Such a write used to fail, the message was requeued without delay and
ran again, thousands of times. Here the entry is made JSON-safe first; if Redis still refuses
it for its content, a minimal entry (raw bytes, reason, the write error) made only of plain
bounded strings is written instead; if even that is refused, the message is parked
(service.dlq.parking), never requeued to run again. A write that fails because Redis is down
or full (service.config.redis_faults) is not the entry's fault: it raises `RedisUnavailable` and the
caller backs off, keeping the message where it is; no minimal entry is written for that."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from service.config.redis_faults import RedisUnavailable, is_redis_unavailable
from service.config.settings import get_settings
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.parking import park
from service.dlq.writer import DLQWriter
from service.redaction import mask_text

__all__ = ["RedisUnavailable", "is_redis_unavailable", "write_entry"]

logger = logging.getLogger(__name__)

# Deeper structures are shown as (clipped) text: cjson refuses more than 1000 levels and
# nobody reads a 900-level argument in a table anyway.
MAX_DEPTH = 32
_TEXT_CHARS = 2_000


def safe_text(value: Any, limit: int = _TEXT_CHARS) -> str:
    """Any value as valid, bounded UTF-8 text (lone surrogates escaped)."""
    text = value if isinstance(value, str) else repr(value)
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy that json.dumps and Redis' cjson both accept: finite numbers, str keys,
    bounded depth, valid UTF-8 strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth >= MAX_DEPTH:
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k, 500): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value]
    return safe_text(value)


def _envelope_json_ok(envelope: Envelope) -> Envelope:
    try:
        json.dumps(envelope)
        return envelope
    except (TypeError, ValueError, RecursionError):
        return {"unreplayable": "the original message could not be stored"}


def minimal_entry(entry: Mapping[str, object], error: BaseException) -> DLQEntry:
    """Only plain bounded strings and numbers: this entry cannot fail for its content."""
    keys = get_settings().sensitive_keys
    reason = safe_text(entry.get("reason"), 100)
    task_name = safe_text(entry.get("task_name") or "(unknown)", 300)
    original = safe_text(entry.get("id") or "(no id)", 300)
    # A distinct id: the original id may be the cause (an entry of another task/reason).
    suffix = hashlib.sha1(f"{reason}|{task_name}".encode()).hexdigest()[:10]
    now = time.time()
    raw_body = entry.get("raw_body")
    raw_bytes = entry.get("raw_body_bytes")
    return {
        "id": f"{original}~{suffix}",
        "task_id": safe_text(entry["task_id"], 300) if entry.get("task_id") else None,
        "task_name": task_name,
        "queue": safe_text(entry.get("queue"), 200),
        "reason": reason,
        "exception_type": safe_text(entry.get("exception_type") or "", 200) or None,
        "exception_message": safe_text(entry.get("exception_message") or "", 2000) or None,
        "dlq_write_error": mask_text(safe_text(f"{type(error).__name__}: {error}"), keys),
        "traceback": "",
        "retries": 0,
        "first_failure_at": now,
        "last_failure_at": now,
        "worker": safe_text(entry.get("worker"), 200),
        "occurrences": 1,
        "args": [],
        "kwargs": {},
        "raw_body": safe_text(raw_body, 65_536) if isinstance(raw_body, str) else None,
        "raw_body_bytes": raw_bytes if isinstance(raw_bytes, int) else None,
        "minimal": True,
    }


def _unavailable(exc: BaseException) -> RedisUnavailable:
    return RedisUnavailable(safe_text(f"{type(exc).__name__}: {exc}", 300))


def write_entry(writer: DLQWriter, entry: DLQEntry, envelope: Envelope) -> str:
    """Write `entry`, or its minimal form if Redis refuses the content, or park the message
    if Redis refuses that too; returns the id written (or the parked field). Raises
    RedisUnavailable when Redis cannot take any write now."""
    try:
        writer.add(json_safe(entry), _envelope_json_ok(envelope))
        return str(entry["id"])
    except Exception as exc:
        if is_redis_unavailable(exc):
            raise _unavailable(exc) from exc
        failure = exc
    logger.warning(
        "dead-letter entry refused for its content (%s); writing a minimal entry",
        type(failure).__name__,
    )
    fallback = minimal_entry(entry, failure)
    for kept in (_envelope_json_ok(envelope), None):
        try:
            if kept is None:  # not even the envelope: keep what the operator needs to judge it
                kept = {"unreplayable": safe_text(f"{type(failure).__name__}: {failure}", 300)}
            writer.add(fallback, kept)
            return str(fallback["id"])
        except Exception as exc:
            if is_redis_unavailable(exc):
                raise _unavailable(exc) from exc
            failure = exc
    error = safe_text(f"{type(failure).__name__}: {failure}", 300)
    try:
        return park(writer.client, fallback, _envelope_json_ok(envelope), error)
    except Exception as exc:
        if is_redis_unavailable(exc):
            raise _unavailable(exc) from exc
        raise
