"""Task names as labels and index keys: bounded to the registered tasks.

A task name in a message is sender-controlled. Used as a metric label or a Redis index key
as is, 2,000 junk names made 2,000 metric series and 2,000 index keys. Names the app does
not register share one label and one index instead; the DLQ entry keeps the real name, and
`fleet dlq list --task NAME` still finds it (filtered per entry within the shared index)."""

from __future__ import annotations

UNREGISTERED = "(unregistered)"
_registered: frozenset[str] | None = None


def registered() -> frozenset[str]:
    """Names of the tasks this app registers (task modules imported once per process)."""
    global _registered
    if _registered is None:
        from service.config.celery_app import app

        app.loader.import_default_modules()
        _registered = frozenset(app.tasks)
    return _registered


def bounded(name: str) -> str:
    return name if name in registered() else UNREGISTERED
