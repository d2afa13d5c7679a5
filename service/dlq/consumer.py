"""The worker's consumer: screens every message and dead-letters poison before Celery
would log-and-discard it (or die on it). One rule at every step: an exception about a
message sends it to the DLQ with its raw bytes and a reason, and never stops the consumer.

The DLQ write happens before the ack. If it fails because Redis is down or full, the
message is requeued after a delay that grows with each consecutive failure (no hot loop
while Redis heals); content the entry cannot hold falls back to a minimal entry instead
(service.dlq.safe_write), so a message is never requeued for its content."""

from __future__ import annotations

import functools
import logging
from reprlib import Repr
from typing import Any

from celery.worker.consumer import Consumer

from service.config.redis_faults import is_redis_unavailable
from service.config.settings import get_settings
from service.dlq.capture import capture_message, capture_minimal
from service.dlq.reasons import Reason
from service.dlq.screening import Call, Problem, screen_call
from service.redaction import mask_text, redact_call
from service.transport.message import raw_body_bytes

logger = logging.getLogger(__name__)

# Seconds before a message whose DLQ write failed is put back: doubled per consecutive
# failure up to the cap, reset by the next write that works.
REQUEUE_DELAY = 2.0
MAX_REQUEUE_DELAY = 60.0
_REPR = Repr()
_REPR.maxstring = _REPR.maxother = 200
_REPR.maxlist = _REPR.maxdict = 20
_REPR.maxlevel = 4


def masked_reprs(task: Any, call: Call) -> tuple[str, str]:
    """argsrepr/kwargsrepr as logs and Flower show them: computed by the worker from the
    decoded body (never the sender's header) with sensitive parameters masked."""
    keys = get_settings().sensitive_keys
    args, kwargs = redact_call(task.run, call.args, call.kwargs, keys)
    return mask_text(_REPR.repr(args), keys), mask_text(_REPR.repr(kwargs), keys)


# Reconnecting to a broker that went away: kombu waits 2, 4, 6... up to 30 s between
# attempts, so a worker found Redis back up to 30 s late. Retry every RECONNECT_MAX_INTERVAL
# at most: the worker resumes within about a second of Redis answering again (each attempt
# is one TCP connect: cheap for Redis).
RECONNECT_FIRST_INTERVAL = 0.5
RECONNECT_MAX_INTERVAL = 1.0


class FleetConsumer(Consumer):
    _write_failures = 0

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = functools.partial(
            conn.ensure_connection,
            interval_start=RECONNECT_FIRST_INTERVAL,
            interval_step=RECONNECT_FIRST_INTERVAL,
            interval_max=RECONNECT_MAX_INTERVAL,
        )
        return super().ensure_connected(conn)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        tasks = self.app.tasks
        settings = get_settings()
        limit = settings.max_body_bytes
        connection_errors = tuple(getattr(self, "connection_errors", None) or ())

        def on_task_received(message: Any) -> Any:
            try:
                result = screen_call(message, tasks, limit)
                if isinstance(result, Problem):
                    return self.dead_letter(message, result)
                headers = message.headers
                headers["argsrepr"], headers["kwargsrepr"] = masked_reprs(
                    tasks[headers["task"]], result
                )
                return handle(message)
            except connection_errors:
                raise  # the broker, not the message: Celery reconnects
            except Exception as exc:  # the one rule: never let a message stop the consumer
                return self.dead_letter(
                    message,
                    Problem(
                        Reason.INVALID_MESSAGE,
                        f"worker could not take the message: {type(exc).__name__}: {exc}",
                        _task_name(message),
                    ),
                )

        return on_task_received

    def dead_letter(self, message: Any, problem: Problem) -> None:
        logger.error(
            "dead-lettering message: %s (%s)",
            problem.detail,
            problem.reason,
            extra={"task_name": problem.task_name, "reason": str(problem.reason)},
        )
        try:
            try:
                capture_message(message, problem.reason, problem.as_exception(), problem.task_name)
            except Exception as build_error:  # the entry itself could not be built
                if is_redis_unavailable(build_error):
                    raise  # not the entry's fault: requeued below, after a pause
                logger.exception("dead-letter entry failed; writing a minimal one")
                capture_minimal(
                    problem.reason,
                    build_error,
                    _header(message, "id") or getattr(message, "delivery_tag", None),
                    problem.task_name,
                    getattr(message, "delivery_info", None),
                    raw_body_bytes(getattr(message, "body", b"")),
                    getattr(message, "_raw", None),
                )
        except Exception as exc:
            FleetConsumer._write_failures += 1
            delay = min(MAX_REQUEUE_DELAY, REQUEUE_DELAY * 2 ** (self._write_failures - 1))
            logger.error(
                "dead-letter write failed (%s); message requeued in %.0fs",
                type(exc).__name__,
                delay,
            )
            self.timer.call_after(delay, self._requeue, (message,))
            return
        FleetConsumer._write_failures = 0
        try:
            message.ack()
        except Exception:
            # Redis gone between the write and the ack: the entry exists; the message stays
            # held by this connection's consumer and comes back once that consumer is dead
            # (service.transport); its second capture only counts another occurrence.
            logger.exception("ack after dead-lettering failed")

    @staticmethod
    def _requeue(message: Any) -> None:
        try:
            message.reject(requeue=True)
        except Exception:
            # Broker unreachable: the message stays held by this connection's consumer and
            # comes back once that consumer is dead (after the dead-owner timeout).
            logger.exception("requeue failed; the message comes back after the dead-owner timeout")

    # Safety nets for the paths screen() should already have caught.
    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.dead_letter(message, Problem(Reason.INVALID_MESSAGE, "unknown message format"))

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.dead_letter(message, Problem(Reason.UNKNOWN_TASK, f"unknown task: {exc}"))

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.dead_letter(message, Problem(Reason.INVALID_MESSAGE, f"invalid task: {exc}"))

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        reason = (
            Reason.CONTENT_TYPE_REJECTED
            if type(exc).__name__ == "ContentDisallowed"
            else Reason.MALFORMED_BODY
        )
        self.dead_letter(
            message, Problem(reason, f"cannot decode: {type(exc).__name__}: {exc}", None)
        )


def _header(message: Any, key: str) -> str | None:
    headers = getattr(message, "headers", None)
    value = headers.get(key) if isinstance(headers, dict) else None
    return value if isinstance(value, str) else None


def _task_name(message: Any) -> str | None:
    return _header(message, "task")
