"""What the transport tells the layers above it: messages it put back on their queue. The
worker's metrics count them, but the worker sits above the transport, so the app factory
adds that listener here (service.app_factory) rather than the transport importing it."""

from __future__ import annotations

from collections.abc import Callable

# (queue, reason, how many, seconds since the owner's last heartbeat or None)
Redelivered = Callable[[str, str, int, float | None], None]
_listeners: list[Redelivered] = []


def on_redelivered(listener: Redelivered) -> None:
    """Call `listener` for every batch of messages this process puts back (added once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def redelivered(queue: str, reason: str, count: int, delay: float | None = None) -> None:
    for listener in _listeners:
        listener(queue, reason, count, delay)
