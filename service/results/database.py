"""Celery's database result backend (SQLAlchemy; PostgreSQL through psycopg 3), masked.

Rows go to Celery's own tables (`celery_taskmeta`, `celery_tasksetmeta`), which Celery creates
with `CREATE TABLE` the first time a process opens a session (`SessionManager.prepare_models`,
a no-op when they exist), so the role in the URL needs CREATE on its schema until they exist;
after that SELECT/INSERT/UPDATE/DELETE are enough. Expired rows are deleted by the
`celery.backend_cleanup` task, which beat schedules daily for backends without native expiry."""

from __future__ import annotations

from celery.backends.database import DatabaseBackend

from service.results.masking import MaskedResultsMixin


class FleetDatabaseBackend(MaskedResultsMixin, DatabaseBackend):
    """Result rows in PostgreSQL, masked."""
