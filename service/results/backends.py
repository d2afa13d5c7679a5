"""Celery's result backends with the masking of service.results.masking.

`install` points Celery's own backend aliases (`redis`, `rediss`, `db`) at these classes, so
the URL in `CELERY_RESULT_BACKEND` still chooses the backend the usual way
(`celery.app.backends.by_url`). The database class is imported only when a `db+` URL is used:
SQLAlchemy is not loaded by a Redis-only deployment."""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend

from service.results.masking import MaskedResultsMixin

BACKEND_CLASSES = {
    "redis": "service.results.backends:FleetRedisBackend",
    "rediss": "service.results.backends:FleetRedisBackend",
    "db": "service.results.database:FleetDatabaseBackend",
    "database": "service.results.database:FleetDatabaseBackend",
}


class FleetRedisBackend(MaskedResultsMixin, RedisBackend):
    """`celery-task-meta-<id>` keys, masked."""


def install(app: Any) -> None:
    """Make the app's loader resolve the result backend URL to the masking classes."""
    app.loader.override_backends = {**app.loader.override_backends, **BACKEND_CLASSES}
