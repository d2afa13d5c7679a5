"""`CELERY_RESULT_BACKEND`: Redis or PostgreSQL, validated, never echoed; the Celery
configuration each one gets; compression only where Celery can store it."""

from __future__ import annotations

from typing import Any

import pytest

from service.config.celeryconfig import build_config
from service.config.settings import load_settings
from service.errors import SettingsError

PG = "db+postgresql://fleet:hunter2@db.internal:5432/results"


def test_postgresql_url_is_accepted_and_gets_the_installed_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", PG)
    settings = load_settings()
    assert settings.result_backend_kind == "postgresql"
    assert settings.result_backend_url == (
        "db+postgresql+psycopg://fleet:hunter2@db.internal:5432/results"
    )
    # Masked in every view of the settings
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_postgresql_configuration_keeps_everything_else_on_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://broker:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", PG)
    settings = load_settings()
    config = build_config(settings)
    assert config["result_backend"].startswith("db+postgresql+psycopg://")
    assert config["broker_url"] == "redis://broker:6379/0"
    assert settings.dlq_redis_url == "redis://broker:6379/0"
    assert "result_backend_transport_options" not in config
    assert config["database_engine_options"]["pool_size"] == settings.result_db_pool_size
    assert config["database_create_tables_at_setup"] is False
    assert config["task_ignore_result"] is True  # results stay opt-in per task
    # A store is retried through a database restart, not 3 times within milliseconds
    assert config["result_backend_always_retry"] is True
    assert config["result_backend_max_retries"] >= 60


def test_redis_results_can_be_compressed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://results:6379/1")
    monkeypatch.setenv("FLEET_RESULT_COMPRESSION", "gzip")
    config = build_config(load_settings())
    assert config["result_compression"] == "gzip"
    assert config["result_backend"] == "redis://results:6379/1"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"CELERY_RESULT_BACKEND": "mysql://u:hunter2@h/db"},
            "CELERY_RESULT_BACKEND: must be a Redis URL or a PostgreSQL database URL",
        ),
        (
            {"CELERY_RESULT_BACKEND": "db+sqlite:///hunter2.db"},
            "PostgreSQL through psycopg 3 is the one database supported",
        ),
        (
            {"CELERY_RESULT_BACKEND": "db+postgresql+psycopg2://u:hunter2@h/db"},
            "CELERY_RESULT_BACKEND: must be a Redis URL or a PostgreSQL",
        ),
        (
            {"CELERY_RESULT_BACKEND": "db+postgresql://u:hunter2@h:port/db"},
            "CELERY_RESULT_BACKEND: has an invalid port",
        ),
        (
            {"CELERY_RESULT_BACKEND": "db+postgresql://u:hunter2@h:5432/"},
            "CELERY_RESULT_BACKEND: must name the database",
        ),
        (
            {"CELERY_RESULT_BACKEND": "db+postgresql://u:hunter2@/db"},
            "CELERY_RESULT_BACKEND: must name the PostgreSQL host",
        ),
        ({"FLEET_RESULT_COMPRESSION": "snappy"}, "FLEET_RESULT_COMPRESSION"),
        (
            {"CELERY_RESULT_BACKEND": PG, "FLEET_RESULT_COMPRESSION": "gzip"},
            "FLEET_RESULT_COMPRESSION: Celery's database backend stores results uncompressed",
        ),
        ({"FLEET_RESULT_DB_POOL_SIZE": "0"}, "FLEET_RESULT_DB_POOL_SIZE"),
    ],
)
def test_bad_result_settings_name_the_variable_and_never_echo_secrets(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_app_uses_the_validated_url_not_celerys_raw_environment_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Celery's conf.result_backend reads CELERY_RESULT_BACKEND itself, unvalidated
    from service.app_factory import create_app

    monkeypatch.setenv("CELERY_RESULT_BACKEND", PG)
    app = create_app(load_settings())
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://elsewhere:6379/0")
    backend: Any = app.backend
    assert type(backend).__name__ == "FleetDatabaseBackend"
    assert backend.url == "postgresql+psycopg://fleet:hunter2@db.internal:5432/results"
