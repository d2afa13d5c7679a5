"""The least-privilege path the README describes: an owner role creates Celery's tables once
(`fleet results create-tables`), then the fleet runs with a role that may only read and write
rows, and Celery creates nothing. `fleet results` refuses a Redis URL and never prints the
password of the URL it was given."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from harness import REPO, RedisServer, Worker
from postgres_server import DATABASE, PASSWORD, PostgresServer

WRITER_PASSWORD = "writer-hunter2"


def fleet(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CELERY_RESULT_BACKEND=url)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _writer_url(postgres: PostgresServer) -> str:
    return f"db+postgresql://writer:{WRITER_PASSWORD}@127.0.0.1:{postgres.port}/{DATABASE}"


@pytest.fixture
def writer(postgres: PostgresServer) -> str:
    """A role that may connect and use rows, not create anything (PostgreSQL 15+ revokes
    CREATE on the public schema from PUBLIC)."""
    postgres.psql(
        DATABASE,
        "DROP ROLE IF EXISTS writer;"
        f"CREATE ROLE writer LOGIN PASSWORD '{WRITER_PASSWORD}';"
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    )
    return _writer_url(postgres)


def test_a_role_without_create_rights_cannot_make_the_tables(writer: str) -> None:
    done = fleet("results", "create-tables", url=writer)
    assert done.returncode == 2
    assert "creating the result tables failed" in done.stderr
    assert "permission denied" in done.stderr
    assert WRITER_PASSWORD not in done.stdout + done.stderr


def test_owner_creates_the_tables_then_a_row_only_role_stores_results(
    postgres: PostgresServer,
    writer: str,
    redis_factory: Callable[..., RedisServer],
    worker_factory: Callable[..., Worker],
    caller_app: Callable[..., Any],
) -> None:
    created = fleet("results", "create-tables", url=postgres.result_backend)
    assert created.returncode == 0, created.stderr
    assert "celery_taskmeta, celery_tasksetmeta" in created.stdout
    postgres.psql(
        DATABASE,
        "GRANT SELECT, INSERT, UPDATE, DELETE ON celery_taskmeta, celery_tasksetmeta TO writer;"
        "GRANT USAGE ON SEQUENCE task_id_sequence, taskset_id_sequence TO writer",
    )
    broker = redis_factory()
    worker_factory("default", broker_url=broker.url, env={"CELERY_RESULT_BACKEND": writer})
    app = caller_app(broker.url, writer)
    result = app.send_task("service.tasks.diagnostics.noop", args=["audit"], ignore_result=False)
    assert result.get(timeout=30) == "audit"
    owner = postgres.psql(
        DATABASE, "SELECT tableowner FROM pg_tables WHERE tablename = 'celery_taskmeta'"
    )
    assert owner == "fleet"  # the owner role made it; the writer created nothing
    cleaned = fleet("results", "cleanup", url=writer)
    assert cleaned.returncode == 0, cleaned.stderr
    assert PASSWORD not in created.stdout + created.stderr


def test_results_commands_refuse_a_redis_url(redis_url: str) -> None:
    done = fleet("results", "cleanup", url=redis_url)
    assert done.returncode == 2
    assert "Redis needs no tables" in done.stderr
