"""`fleet worker|beat|flower` before the exec: check the command line against the catalog
and the settings, prepare the worker's directories, then replace this process by Celery."""

from __future__ import annotations

import math
import os
import sys
from typing import NoReturn

from service.catalog.queues import CATALOG
from service.cli_support import fail
from service.config.settings import FleetSettings
from service.worker.fsutil import empty_dir

_TIME_LIMIT_OPTIONS = ("--time-limit", "--soft-time-limit")


def check_queues(queues: str) -> list[str]:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        fail("-Q needs at least one queue name")
    for name in names:
        if name not in CATALOG:
            fail(f"unknown queue {name!r}; known queues: {', '.join(CATALOG.names)}")
    return names


def check_time_limits(args: list[str], settings: FleetSettings) -> None:
    """A time limit given on the command line must be a positive finite number of seconds
    (no bound from the visibility timeout: a running task's message is owned by its live
    worker and never re-delivered)."""
    for index, arg in enumerate(args):
        option, _, inline = arg.partition("=")
        if option not in _TIME_LIMIT_OPTIONS:
            continue
        raw = inline if inline else (args[index + 1] if index + 1 < len(args) else "")
        try:
            seconds = float(raw)
        except ValueError:
            fail(f"{option} needs a number of seconds, got {raw!r}")
        if not math.isfinite(seconds) or seconds <= 0:
            fail(f"{option} must be a positive finite number of seconds, got {raw!r}")


def worker_args(settings: FleetSettings, queues: str, extra: list[str]) -> list[str]:
    """The `celery worker` arguments, after preparing the metrics and heartbeat dirs."""
    names = check_queues(queues)
    check_time_limits(extra, settings)
    # Multiprocess metrics: a dir shared by the main process and the pool children. Empty it:
    # files from a previous run would be counted again (and belong to dead pids).
    metrics_dir = settings.metrics_dir
    empty_dir(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    settings.heartbeat_file.parent.mkdir(parents=True, exist_ok=True)
    settings.heartbeat_file.unlink(missing_ok=True)
    args = ["worker", "-Q", ",".join(names), "--loglevel", settings.log_level]
    # Gossip makes every worker consume every other worker's events (N^2 at fleet scale);
    # without task events nothing reads the 2 s worker heartbeats either.
    args.append("--without-gossip")
    if not settings.task_events:
        args.append("--without-heartbeat")
    if not any(a.partition("=")[0] == "--prefetch-multiplier" for a in extra):
        # Celery fills an absent --prefetch-multiplier with the configured 1 before any hook
        # runs (service.worker.hooks would never see it missing): name the queues' own.
        prefetch = min(CATALOG.get(name).prefetch_multiplier for name in names)
        args += ["--prefetch-multiplier", str(prefetch)]
    return [*args, *extra]


def exec_celery(args: list[str]) -> NoReturn:
    argv = [sys.executable, "-m", "celery", "-A", "service", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
