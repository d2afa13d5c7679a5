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


def install(app: Any, url: str) -> None:
    """Make the app's loader resolve the result backend URL to the masking classes, and pin
    the URL: Celery's `conf.result_backend` prefers the raw CELERY_RESULT_BACKEND variable
    over any configured value (`celery.app.utils.Settings.result_backend`), which would skip
    the validated, normalised URL; `backend_cls` is read before it (`Celery._get_backend`)."""
    app.loader.override_backends = {**app.loader.override_backends, **BACKEND_CLASSES}
    app.backend_cls = url
