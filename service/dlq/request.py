"""A Celery Request that dead-letters hard time-limit kills in the worker's main process
(the child is gone, so the task's own code cannot) and expired messages (Celery drops them
with no trace: celery.worker.request.Request.revoked -> maybe_expire -> _announce_revoked,
which acknowledges), before Celery acknowledges them, and masks the text of the task events
Flower shows."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeLimitExceeded
from celery.worker.request import Request
from celery.worker.state import task_ready

from service.catalog.routing import queue_for_delivery
from service.config.settings import get_settings
from service.dlq import listeners
from service.dlq.capture import capture_message
from service.dlq.reasons import Reason
from service.errors import FleetError
from service.redaction import mask_text

logger = logging.getLogger(__name__)


class TaskExpired(FleetError):
    """The message's `expires` passed before a worker could run it."""


class FleetRequest(Request):
    def send_event(self, type: str, **fields: Any) -> None:
        # Flower builds its task views from these events: exception reprs, tracebacks and
        # results are free text that may carry secrets (argsrepr is masked at the source).
        keys = get_settings().sensitive_keys
        masked = {k: mask_text(v, keys) if isinstance(v, str) else v for k, v in fields.items()}
        super().send_event(type, **masked)

    def _announce_revoked(self, reason: str, terminated: bool, signum: Any, expired: bool) -> None:
        if expired and not self._fleet_expired():
            return  # not acknowledged: requeued, and dead-lettered when it comes back
        super()._announce_revoked(reason, terminated, signum, expired)  # type: ignore[misc]

    def _fleet_expired(self) -> bool:
        """Count an expired message and dead-letter it (unless FLEET_DLQ_EXPIRED=false).
        False when the write failed: the message was requeued instead of acknowledged."""
        listeners.expired(queue_for_delivery(dict(self.delivery_info or {})), self.name)
        if not get_settings().dlq_expired:
            return True
        try:
            capture_message(
                self.message,
                Reason.EXPIRED,
                TaskExpired(f"expired at {self.expires} before it could run"),
                self.name,
            )
        except Exception:
            logger.exception("dead-letter write failed for an expired message; requeued")
            task_ready(self)
            self._already_revoked = True
            self.reject(requeue=True)
            return False
        return True

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft and self.task.acks_late:
            try:
                capture_message(
                    self.message, Reason.TIME_LIMIT, TimeLimitExceeded(timeout), self.name
                )
            except Exception:
                # Not acked: the message goes back to its queue instead of vanishing.
                logger.exception("dead-letter write failed after a hard time limit; requeued")
                task_ready(self)
                self.reject(requeue=True)
                return
        super().on_timeout(soft, timeout)
