"""Liveness without broadcasts: the worker touches a file while its consumer runs, and
the liveness probe (service.liveness, standard library only) fails when it is stale.

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
from service.liveness import age_seconds

__all__ = ["HeartbeatStep", "age_seconds", "touch"]


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write the time too, so the file is meaningful even where mtime is unreliable.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{time.time():.3f}\n")
    os.replace(tmp, path)


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
