"""celery-fleet service: `celery -A service worker -Q <queue>` finds `service.app`.

The app is imported lazily so that `import service.catalog.queues` (infra, dashboards, alerts) stays
standard-library only and never needs broker settings."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from service.app_factory import app

        return app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
