"""A Celery Request that dead-letters hard time-limit kills in the worker's main process
(the child is gone, so the task's own code cannot) before Celery acknowledges them, and
masks the text of the task events Flower shows."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeLimitExceeded
from celery.worker.request import Request
from celery.worker.state import task_ready

from service.config.settings import get_settings
from service.dlq.capture import capture_message
from service.dlq.reasons import Reason
from service.redaction import mask_text

logger = logging.getLogger(__name__)


class FleetRequest(Request):
    def send_event(self, type: str, **fields: Any) -> None:
        # Flower builds its task views from these events: exception reprs, tracebacks and
        # results are free text that may carry secrets (argsrepr is masked at the source).
        keys = get_settings().sensitive_keys
        masked = {k: mask_text(v, keys) if isinstance(v, str) else v for k, v in fields.items()}
        super().send_event(type, **masked)

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
