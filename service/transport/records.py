"""kombu's unacked record, [message, exchange, routing_key]: reading it, and the errors and
warnings of putting one back (shared by the QoS and the dead-owner sweep)."""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from service.errors import FleetError
from service.transport.envelope import MalformedEnvelope, check_envelope

logger = logging.getLogger("service.transport.qos")

# Seconds between two identical warnings (a full Redis would log once per sweep otherwise).
WARN_EVERY = 60.0
_last_warned: dict[str, float] = {}


def warn_throttled(key: str, message: str, *args: Any) -> None:
    now = time.monotonic()
    if now - _last_warned.get(key, -WARN_EVERY) >= WARN_EVERY:
        _last_warned[key] = now
        logger.warning(message, *args)


class RestoreRefused(FleetError):
    """Redis refused a restore write (e.g. OOM under noeviction); the record is kept."""


def parse_record(raw: bytes) -> tuple[dict[str, Any], str, str]:
    """kombu's unacked record, [message, exchange, routing_key], checked as a whole."""
    try:
        record = loads(bytes_to_str(raw))
    except Exception as exc:
        raise MalformedEnvelope(f"unacked record is not JSON: {type(exc).__name__}") from None
    if not (isinstance(record, list) and len(record) == 3):
        raise MalformedEnvelope("unacked record is not [message, exchange, routing_key]")
    message, exchange, routing_key = record
    if not isinstance(exchange, str) or not isinstance(routing_key, str):
        raise MalformedEnvelope("unacked record has a non-string exchange or routing key")
    check_envelope(message)
    return message, exchange, routing_key


def refused(exc: Exception, where: str) -> NoReturn:
    warn_throttled(
        "restore",
        "Redis refused to requeue unacked messages (%s); they stay in %s and the next sweep "
        "tries again",
        exc,
        where,
    )
    # From exc: the fault classification (service.config.redis_faults) reads the cause.
    raise RestoreRefused(str(exc)) from exc


def routing_key_hint(raw: bytes) -> str:
    """The queue a broken record probably came from, for the DLQ entry (default if unknown)."""
    try:
        record = loads(bytes_to_str(raw))
        hint = record[2] if isinstance(record, list) and len(record) == 3 else ""
        return hint if isinstance(hint, str) else ""
    except Exception:
        return ""
