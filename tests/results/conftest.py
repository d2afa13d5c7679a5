"""Fixtures for the result backend tests: one private PostgreSQL server per session, an
empty result database per test, and callers (the service's own app) that read results from
a given backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from postgres_server import PostgresServer, start_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.discard()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> PostgresServer:
    """The session's server with Celery's tables dropped: each test starts from nothing
    (and so also covers Celery creating its tables)."""
    postgres_server.psql(
        "fleet_results",
        "DROP TABLE IF EXISTS celery_taskmeta, celery_tasksetmeta;"
        "DROP SEQUENCE IF EXISTS task_id_sequence, taskset_id_sequence",
    )
    return postgres_server


@pytest.fixture
def caller_app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The service's app as a fresh caller process would build it from its environment."""

    def build(broker_url: str, result_backend: str) -> Any:
        from service.app_factory import create_app
        from service.config.settings import load_settings

        monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
        monkeypatch.setenv("CELERY_RESULT_BACKEND", result_backend)
        return create_app(load_settings())

    return build
