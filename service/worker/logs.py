"""JSON logs, one object per line: time, level, message, logger, and for task code
task_id, task_name, queue, retries and worker. Secrets are masked before formatting."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from service.catalog.routing import queue_for_delivery
from service.config.settings import FleetSettings
from service.redaction import mask_text, redact

_TASK_FIELDS = ("task_id", "task_name", "queue", "retries")


class TaskContextFilter(logging.Filter):
    """Adds the running task's identity (from Celery's current task) to every record."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        from celery import current_task

        record.worker = self.worker
        task = current_task
        request = getattr(task, "request", None) if task else None
        if request is not None and getattr(request, "id", None):
            record.task_id = request.id
            record.task_name = task.name
            record.queue = queue_for_delivery(getattr(request, "delivery_info", None))
            record.retries = request.retries
        return True


class RedactingFilter(logging.Filter):
    """Masks URL credentials and sensitive values in the message, the traceback (exception
    reprs carry arguments) and structured extras; long text is clipped first."""

    def __init__(self, sensitive_keys: tuple[str, ...]) -> None:
        super().__init__()
        self.sensitive_keys = sensitive_keys

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return mask_text(value, self.sensitive_keys)
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in redact(value, self.sensitive_keys).items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, self.sensitive_keys)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key, value in list(vars(record).items()):
            if isinstance(value, dict | list) and key != "args":
                setattr(record, key, self._scrub(value))
        if record.exc_info and record.exc_info[1] is not None:
            # Format once here so the traceback text can be masked too.
            record.exc_text = mask_text(
                logging.Formatter().formatException(record.exc_info), self.sensitive_keys
            )
            record.exc_info = None
        return True


def build_handler(settings: FleetSettings, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(message)s %(name)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(task_id)s] %(message)s",
                defaults={"task_id": "-"},
            )
        )
    handler.addFilter(TaskContextFilter(socket.gethostname()))
    handler.addFilter(RedactingFilter(settings.sensitive_keys))
    return handler


def configure_logging(settings: FleetSettings) -> None:
    """Replace the root handlers with one JSON (or text) handler at the configured level."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(build_handler(settings))
    root.setLevel(settings.log_level)
    # Celery's own loggers propagate to root; do not let them add their own handlers.
    for name in ("celery", "celery.task", "celery.worker", "celery.beat", "kombu"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # The per-task lines ("received" from the strategy, "succeeded"/"retry" from the tracer);
    # their warnings and errors (failures, time limits) are always logged.
    per_task = settings.log_level if settings.log_every_task else "WARNING"
    for name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).setLevel(per_task)
