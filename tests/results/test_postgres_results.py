"""Results in PostgreSQL (Celery's database backend) against a real server the tests start:
a task that opts in stores its result; a caller reads it after the worker, Redis and the
database restarted; expired rows are deleted by `celery.backend_cleanup`, which beat
schedules for this backend (and not for Redis, whose keys expire on their own)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.beat import PersistentScheduler
from harness import RedisServer, Worker, wait_until
from postgres_server import PostgresServer


def _rows(postgres: PostgresServer, where: str = "true") -> int:
    query = f"SELECT count(*) FROM celery_taskmeta WHERE {where}"
    return int(postgres.psql("fleet_results", query))


def test_result_outlives_worker_redis_and_database_restarts(
    postgres: PostgresServer,
    redis_factory: Callable[..., RedisServer],
    worker_factory: Callable[..., Worker],
    caller_app: Callable[..., Any],
) -> None:
    broker = redis_factory()
    env = {"CELERY_RESULT_BACKEND": postgres.result_backend}
    worker = worker_factory("default,reports", broker_url=broker.url, env=env)
    app = caller_app(broker.url, postgres.result_backend)
    # Given a report call that opts in and a call that does not
    kept = app.send_task(
        "service.tasks.reports.generate_custom_report",
        args=[{"name": "q3-audit"}],
        ignore_result=False,
    )
    # (explicit: the shipped default, task_ignore_result; other tests' producers opt in)
    ignored = app.send_task("service.tasks.diagnostics.noop", args=["not kept"], ignore_result=True)
    report_path = kept.get(timeout=30)
    assert report_path.endswith(".csv")
    wait_until(lambda: ignored.id in worker.log(), 30, message="the ignored call to run")
    assert _rows(postgres) == 1
    # When everything restarts: the worker, the broker's Redis (no persistence: empty after)
    # and the database server
    worker.stop()
    broker.restart()
    assert redis.Redis.from_url(broker.url).dbsize() == 0
    postgres.restart()
    worker_factory("default,reports", broker_url=broker.url, env=env)
    # Then a new caller still reads the stored result, with its extended fields
    reader = caller_app(broker.url, postgres.result_backend).AsyncResult(kept.id)
    assert reader.state == "SUCCESS"
    assert reader.get(timeout=10) == report_path
    assert reader.name == "service.tasks.reports.generate_custom_report"
    assert reader.queue == "reports"
    assert reader.args == [{"name": "q3-audit"}]
    assert caller_app(broker.url, postgres.result_backend).AsyncResult(ignored.id).state == (
        "PENDING"
    )


def test_expired_rows_are_deleted_by_backend_cleanup(
    postgres: PostgresServer,
    redis_factory: Callable[..., RedisServer],
    worker_factory: Callable[..., Worker],
    caller_app: Callable[..., Any],
) -> None:
    broker = redis_factory()
    worker_factory(
        "default", broker_url=broker.url, env={"CELERY_RESULT_BACKEND": postgres.result_backend}
    )
    app = caller_app(broker.url, postgres.result_backend)
    calls = [
        app.send_task("service.tasks.diagnostics.noop", args=[i], ignore_result=False)
        for i in range(3)
    ]
    assert [c.get(timeout=30) for c in calls] == [0, 1, 2]
    # Two rows older than FLEET_RESULT_EXPIRES (a day by default), one fresh
    old = ",".join(f"'{c.id}'" for c in calls[:2])
    postgres.psql(
        "fleet_results",
        "UPDATE celery_taskmeta SET date_done = now() - interval '2 days'"
        f" WHERE task_id IN ({old})",
    )
    # The task beat sends, run by a worker like any other
    app.send_task("celery.backend_cleanup", ignore_result=True)  # as beat sends it
    wait_until(lambda: _rows(postgres) == 1, 30, message="expired rows to be deleted")
    assert _rows(postgres, f"task_id = '{calls[2].id}'") == 1


@pytest.mark.parametrize(("backend", "scheduled"), [("postgres", True), ("redis", False)])
def test_beat_schedules_cleanup_only_for_the_database_backend(
    backend: str,
    scheduled: bool,
    postgres_server: PostgresServer,
    redis_url: str,
    caller_app: Callable[..., Any],
    tmp_path: Path,
) -> None:
    url = postgres_server.result_backend if backend == "postgres" else redis_url
    app = caller_app(redis_url, url)
    scheduler = PersistentScheduler(app=app, schedule_filename=str(tmp_path / "schedule"))
    try:
        assert ("celery.backend_cleanup" in scheduler.schedule) is scheduled
        # Beside the fleet's own entries, which stay
        assert "snapshot-queues" in scheduler.schedule
    finally:
        scheduler.close()


def test_a_result_finished_while_the_database_restarts_is_still_stored(
    postgres: PostgresServer,
    redis_factory: Callable[..., RedisServer],
    worker_factory: Callable[..., Worker],
    caller_app: Callable[..., Any],
) -> None:
    broker = redis_factory()
    env = {"CELERY_RESULT_BACKEND": postgres.result_backend}
    worker = worker_factory("default", broker_url=broker.url, env=env)
    app = caller_app(broker.url, postgres.result_backend)
    warm = app.send_task("service.tasks.diagnostics.noop", args=["warm"], ignore_result=False)
    assert warm.get(timeout=30) == "warm"  # tables made, the child's pool connected
    # Given the database down (a failover, a restart) when a task finishes
    postgres.stop()
    try:
        during = app.send_task("service.tasks.diagnostics.noop", args=["kept"], ignore_result=False)
        wait_until(lambda: during.id in worker.log(), 30, message="the task to run")
        time.sleep(5)
    finally:
        postgres.start()
    # Then the worker's store is retried until the database is back: nothing lost
    assert during.get(timeout=120) == "kept"
