"""Issue 17 item 7: with `result_extended`, a stored result record (Redis's
`celery-task-meta-<id>`, PostgreSQL's `celery_taskmeta` row) masks the password keyword, the
positional password and the exception text exactly as the DLQ entry of the same call does.
The task's own return value is stored as returned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from harness import RedisServer, Worker, wait_until
from postgres_server import PostgresServer

SECRET = "hunter2-results"
FIXED = "fleet:diag:fixed:results-run"


def _send_calls(app: Any, client: redis.Redis) -> dict[str, Any]:
    """A keyword password, a positional one, and a failure whose message holds one."""
    client.set(FIXED, 1)  # until_fixed succeeds: its result is the run key
    calls = {
        "keyword": app.send_task(
            "service.tasks.diagnostics.until_fixed",
            args=["results-run"],
            kwargs={"password": SECRET},
            ignore_result=False,
        ),
        "positional": app.send_task(
            "service.tasks.diagnostics.until_fixed",
            args=["results-run", SECRET],
            ignore_result=False,
        ),
        "failure": app.send_task(
            "service.tasks.diagnostics.fail",
            args=[f"login failed: password={SECRET} for postgresql://ann:{SECRET}@db/x"],
            ignore_result=False,
        ),
    }
    return calls


def _check_caller_view(calls: dict[str, Any]) -> None:
    assert calls["keyword"].get(timeout=30) == "results-run"
    assert calls["positional"].get(timeout=30) == "results-run"
    assert calls["keyword"].kwargs == {"password": "***"}
    assert calls["positional"].args == ["results-run", "***"]
    with pytest.raises(Exception, match=r"password=\*\*\*") as raised:
        calls["failure"].get(timeout=30)
    assert SECRET not in str(raised.value)
    assert SECRET not in (calls["failure"].traceback or "")
    assert "password=***" in (calls["failure"].traceback or "")


def test_redis_result_records_are_masked(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Callable[..., Worker]
) -> None:
    worker_factory("default")
    calls = _send_calls(celery_app, redis_client)
    _check_caller_view(calls)
    # What is stored, byte for byte
    for result in calls.values():
        raw = redis_client.get(f"celery-task-meta-{result.id}")
        assert raw is not None
        assert SECRET.encode() not in raw, raw
        assert b"***" in raw


def test_postgresql_result_rows_are_masked(
    postgres: PostgresServer,
    redis_factory: Callable[..., RedisServer],
    worker_factory: Callable[..., Worker],
    caller_app: Callable[..., Any],
) -> None:
    broker = redis_factory()
    worker = worker_factory(
        "default", broker_url=broker.url, env={"CELERY_RESULT_BACKEND": postgres.result_backend}
    )
    app = caller_app(broker.url, postgres.result_backend)
    calls = _send_calls(app, redis.Redis.from_url(broker.url))
    _check_caller_view(calls)
    wait_until(
        lambda: postgres.psql("fleet_results", "SELECT count(*) FROM celery_taskmeta") == "3",
        10,
        message="three result rows",
    )
    stored = postgres.psql(
        "fleet_results",
        "SELECT encode(args, 'escape') || encode(kwargs, 'escape') || encode(result, 'escape')"
        " || coalesce(traceback, '') FROM celery_taskmeta",
    )
    assert SECRET not in stored
    assert stored.count("***") >= 3
    # Nothing in Redis: results moved, the broker's Redis holds no result keys
    assert not redis.Redis.from_url(broker.url).keys("celery-task-meta-*")
    # The URL's password never reaches the worker's log (Celery's banner masks it)
    assert "pg-hunter2-secret" not in worker.log()
