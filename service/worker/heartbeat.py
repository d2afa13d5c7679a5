"""Liveness without broadcasts: the worker touches a file while its consumer runs, and
`fleet probe` (the Kubernetes liveness probe) fails when the file is stale.

`celery inspect ping` broadcasts to every worker through the broker and flaps during broker
blips; this probe asks only the local filesystem."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.worker.consumer.tasks import Tasks

from service.config.settings import get_settings


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write the time too, so the file is meaningful even where mtime is unreliable.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{time.time():.3f}\n")
    os.replace(tmp, path)


def age_seconds(path: Path, now: float | None = None) -> float | None:
    """Seconds since the last beat, or None when there is no heartbeat file."""
    try:
        stamp = float(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        try:
            stamp = path.stat().st_mtime
        except FileNotFoundError:
            return None
    return (time.time() if now is None else now) - stamp


class HeartbeatStep(bootsteps.StartStopStep):
    """Consumer bootstep: runs only while the consumer is connected and consuming, so a
    worker stuck reconnecting or with a blocked event loop goes stale."""

    requires = (Tasks,)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        settings = get_settings()
        self.path = settings.heartbeat_file
        self.interval = settings.heartbeat_interval
        self._timer: Any = None

    def start(self, parent: Any) -> None:
        touch(self.path)
        self._timer = parent.timer.call_repeatedly(self.interval, touch, (self.path,), priority=10)

    def stop(self, parent: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
