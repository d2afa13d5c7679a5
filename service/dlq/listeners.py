"""Who hears that a message was dead-lettered or expired. The worker's metrics count both, but
the worker sits above the DLQ, so the app factory adds those listeners here
(service.app_factory) rather than the DLQ importing the worker."""

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


# (queue, task name): a message whose `expires` passed before it could run.
Expired = Callable[[str, str], None]
_expired_listeners: list[Expired] = []


def on_expired(listener: Expired) -> None:
    """Call `listener` for every expired message this process meets (added once)."""
    if listener not in _expired_listeners:
        _expired_listeners.append(listener)


def expired(queue: str, task_name: str) -> None:
    for listener in _expired_listeners:
        listener(queue, task_name)
