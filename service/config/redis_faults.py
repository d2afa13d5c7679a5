"""One classification of Redis errors, used by every part that writes to Redis (transport
poll, ack and requeue; DLQ writes; the tasks' own broker access; publishing).

Two kinds, and only two:
- **unavailable**: Redis cannot take the command *now* (down, restarting, loading its data,
  full under `noeviction`, read-only replica, paused by `CLIENT PAUSE`, busy with a script).
  The command is not at fault: back off, retry, keep the message where it is.
- **content**: Redis refused the command for what it holds (wrong-type key, a script error
  about the data, an argument cjson cannot take). Retrying gives the same answer: a message
  behind it goes to the dead-letter queue.

How redis-py (redis/_parsers/base.py, EXCEPTION_CLASSES) surfaces each "not now" reply:
`-OOM ...` becomes `OutOfMemoryError` with the code stripped ("command not allowed when used
memory > 'maxmemory'."), also inside a pipeline ("Command # 1 (ZREM ...) of pipeline caused
error: ...") and a script ("... script: <sha>, on @user_script:1."); `-LOADING` becomes
`BusyLoadingError` (a ConnectionError); `-READONLY` `ReadOnlyError`; `-TRYAGAIN`,
`-CLUSTERDOWN`, `-MASTERDOWN` their own classes. Codes redis-py leaves as a plain
`ResponseError` keep their prefix (`BUSY`, `MISCONF`, `NOREPLICAS`). A `CLIENT PAUSE` longer
than the socket timeout is a `TimeoutError`. kombu and Celery wrap these (OperationalError,
Reject), so the cause chain is followed too.

One more "not now" is kombu's, not Redis': after a Redis error kombu closes the channel, and
`close_channel()` sets the channel's connection to None (kombu/transport/virtual/base.py).
A later publish, poll or ack on that channel fails inside kombu with `AttributeError:
'NoneType' object has no attribute 'client'` (seen publishing a retry with Redis full). The
broker is the cause, not the message. The same AttributeError raised outside kombu (a task's
own None) is the task's own fault and stays content."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from kombu.exceptions import OperationalError as KombuOperationalError
from prometheus_client import Counter

from service.errors import FleetError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Error-reply codes (and their redis-py text once the code is stripped) that mean "not now".
_UNAVAILABLE_PREFIXES = (
    "OOM",
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "MISCONF",
    "BUSY",
    "NOREPLICAS",
    "TRYAGAIN",
    "CLUSTERDOWN",
)
_UNAVAILABLE_TEXT = (
    "command not allowed when used memory",  # OOM, as redis-py words it after the code
    "OOM command not allowed",
    "You can't write against a read only replica",
    "Redis is loading the dataset in memory",
    "Redis is busy running a script",
)
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # BusyLoadingError, AuthenticationError's parent, MaxConnections
    redis.TimeoutError,  # a CLIENT PAUSE longer than the socket timeout
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # MasterDownError too
    ConnectionError,  # the builtin: sockets reset under redis-py
    TimeoutError,
)

REFUSALS = Counter(
    "celery_redis_refusals",
    "Redis writes refused because Redis was unavailable or full (each is retried).",
    ("operation",),
)


class RedisUnavailable(FleetError):
    """Redis could not take the write now (down, full, read-only, paused): back off and try
    again; the message stays where it is."""


def is_redis_unavailable(exc: BaseException | None) -> bool:
    """True when `exc` (or what it wraps) means Redis cannot take commands now."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (RedisUnavailable, *_UNAVAILABLE_TYPES)) or _closed_channel(exc):
            return True
        if isinstance(exc, redis.RedisError | OSError):
            text = str(exc)
            if text.startswith(_UNAVAILABLE_PREFIXES) or any(t in text for t in _UNAVAILABLE_TEXT):
                return True
        exc = _wrapped(exc)
        seen += 1
    return False


def refusal_as_connection_error(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `call`; a refusal (full, read-only, paused Redis) comes out as redis-py's
    ConnectionError, which kombu counts among its connection errors. Where Celery only
    recovers from those (a consumer binding its queues at start: any other error stops the
    worker as "unrecoverable"), it then reconnects and tries again instead of dying."""
    try:
        return call(*args, **kwargs)
    except redis.ConnectionError:
        raise
    except Exception as exc:
        if not is_redis_unavailable(exc):
            raise
        raise redis.ConnectionError(f"Redis refused the command ({type(exc).__name__})") from exc


def _closed_channel(exc: BaseException) -> bool:
    """kombu used a channel it had closed: its connection is None where kombu reads
    `.client` from it, and the error is raised in kombu's own code."""
    if not (
        isinstance(exc, AttributeError)
        and exc.name == "client"
        and str(exc).startswith("'NoneType' object")
    ):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("kombu.")


def _wrapped(exc: BaseException) -> BaseException | None:
    """The error `exc` wraps: its explicit cause, Celery's Reject(reason), or for kombu's
    OperationalError (raised inside its except block) the error being handled. A plain
    error raised while handling another is its own kind, so __context__ is not followed."""
    if exc.__cause__ is not None:
        return exc.__cause__
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    if isinstance(exc, KombuOperationalError):
        return exc.__context__
    return None


# Seconds between two identical warnings: a full Redis would log once per attempt otherwise.
WARN_EVERY = 30.0
_last_warned: dict[str, float] = {}


def note_refusal(operation: str, exc: BaseException, what: str = "") -> None:
    """Count one refused write (metric `celery_redis_refusals_total{operation}`) and log it,
    at most once per WARN_EVERY per operation."""
    REFUSALS.labels(operation).inc()
    now = time.monotonic()
    if now - _last_warned.get(operation, -WARN_EVERY) >= WARN_EVERY:
        _last_warned[operation] = now
        logger.warning(
            "Redis refused %s (%s: %.200s)%s; kept and retried",
            operation,
            type(exc).__name__,
            str(exc),
            f": {what}" if what else "",
            extra={"operation": operation},
        )


def backoff_delays(budget: float, first: float = 0.25, cap: float = 5.0) -> list[float]:
    """Pauses that double from `first` up to `cap`, with jitter, summing to about `budget`."""
    delays: list[float] = []
    delay, total = first, 0.0
    while total < budget:
        pause = min(cap, delay) * random.uniform(0.8, 1.2)
        delays.append(pause)
        total += pause
        delay *= 2
    return delays


def retry_while_unavailable(
    call: Callable[[], T],
    operation: str,
    budget: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`; while it fails because Redis is unavailable, count it, wait and retry,
    for about `budget` seconds. Then raise RedisUnavailable (the caller keeps the message
    where it is). Content errors are raised at once, unchanged."""
    last: BaseException | None = None
    for pause in (*backoff_delays(budget), None):
        try:
            return call()
        except Exception as exc:
            if not is_redis_unavailable(exc):
                raise
            last = exc
            note_refusal(operation, exc)
        if pause is not None:
            sleep(pause)
    raise RedisUnavailable(f"{operation}: {type(last).__name__}: {str(last)[:200]}") from last
