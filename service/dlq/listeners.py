"""Who hears that a message was dead-lettered. The worker's metrics count it, but the worker
sits above the DLQ, so the app factory adds that listener here (service.app_factory) rather
than the DLQ importing the worker."""

from __future__ import annotations

from collections.abc import Callable

# (queue, task name, reason)
DeadLettered = Callable[[str, str, str], None]
_listeners: list[DeadLettered] = []


def on_dead_lettered(listener: DeadLettered) -> None:
    """Call `listener` after every dead-letter write of this process (added once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def dead_lettered(queue: str, task_name: str, reason: str) -> None:
    for listener in _listeners:
        listener(queue, task_name, reason)
