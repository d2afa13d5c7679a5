"""The worker's consumer: screens every message and dead-letters poison before Celery
would log-and-discard it. The DLQ write happens before the ack; if it fails the message is
requeued a little later instead of acked, so nothing vanishes."""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from service.config.settings import get_settings
from service.dlq.capture import capture_message
from service.dlq.reasons import Reason
from service.dlq.screening import Problem, screen

logger = logging.getLogger(__name__)

# Seconds before a message whose DLQ write failed is put back (no hot loop while Redis heals).
REQUEUE_DELAY = 2.0


class FleetConsumer(Consumer):
    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)
        tasks = self.app.tasks
        limit = get_settings().max_body_bytes

        def on_task_received(message: Any) -> Any:
            problem = screen(message, tasks, limit)
            if problem is not None:
                return self.dead_letter(message, problem)
            return handle(message)

        return on_task_received

    def dead_letter(self, message: Any, problem: Problem) -> None:
        logger.error(
            "dead-lettering message: %s (%s)",
            problem.detail,
            problem.reason,
            extra={"task_name": problem.task_name, "reason": str(problem.reason)},
        )
        try:
            capture_message(message, problem.reason, problem.as_exception(), problem.task_name)
        except Exception:
            logger.exception("dead-letter write failed; message will be requeued")
            self.timer.call_after(REQUEUE_DELAY, self._requeue, (message,))
            return
        message.ack()

    @staticmethod
    def _requeue(message: Any) -> None:
        try:
            message.reject(requeue=True)
        except Exception:
            # Broker unreachable: the message stays in the unacked hash and kombu restores it
            # after the visibility timeout.
            logger.exception("requeue failed; the broker restores it after visibility timeout")

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
        self.dead_letter(message, Problem(reason, f"cannot decode: {exc}"))
