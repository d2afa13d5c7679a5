"""Task names as labels and index keys: capped to the registered tasks.

A task name in a message is sender-controlled. Used as a metric label or a Redis index key
as is, 2,000 junk names made 2,000 metric series and 2,000 index keys. Names the app does
not register share one label and one index instead; the DLQ entry keeps the real name, and
`fleet dlq list --task NAME` still finds it (filtered per entry within the shared index).

Which names are registered only the app knows, and the app sits above every module that
labels or indexes by task name. So the app factory installs the source of the names here
(`use`), and this module imports nothing of the service."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from service.errors import FleetError

UNREGISTERED = "(unregistered)"
_source: Callable[[], Iterable[str]] | None = None
_registered: frozenset[str] | None = None


class TaskNamesUnknown(FleetError):
    """A task name was to be capped before the app installed its registered names."""


def use(source: Callable[[], Iterable[str]]) -> None:
    """Install where the registered names come from (called by the app factory). The source
    is called once, at the first lookup: importing every task module is not free."""
    global _source, _registered
    _source, _registered = source, None


def registered() -> frozenset[str]:
    """Names of the tasks this app registers."""
    global _registered
    if _registered is None:
        if _source is None:
            raise TaskNamesUnknown(
                "task names are capped to the registered tasks, and no app has registered any "
                "in this process: create the app first (import service.app)"
            )
        _registered = frozenset(_source())
    return _registered


def task_label(name: str) -> str:
    """`name` if the app registers it, else the one shared UNREGISTERED label."""
    return name if name in registered() else UNREGISTERED
