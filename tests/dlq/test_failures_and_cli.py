"""Failed tasks land in the DLQ once, with what is needed to understand and replay them;
the `fleet dlq` CLI lists, shows, replays (exactly once) and purges them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from harness import wait_until
from typer.testing import CliRunner

from service.cli import _register_subcommands, cli
from service.dlq.access import dlq_reader, dlq_writer
from service.dlq.reader import Filter

runner = CliRunner()
_register_subcommands()


def fleet(*args: str) -> Any:
    result = runner.invoke(cli, list(args))
    return result


def test_exhausted_retries_land_once_and_replay_runs_again(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a task that fails transiently more often than its max_retries (3)
    worker_factory("default")
    result = celery_app.send_task("service.tasks.diagnostics.flaky", args=["x", 99])
    with pytest.raises(Exception, match="attempt 3 failed"):
        result.get(timeout=40)
    # Then it is in the DLQ exactly once, with its retry count and history
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == 1, 10, message="entry")
    entry = dlq.find(result.id, ("default",))
    assert entry["reason"] == "max_retries_exceeded"
    assert entry["retries"] == 3
    assert entry["exception_type"] == "TransientTaskError"
    assert entry["args"] == ["x", 99]
    assert entry["first_failure_at"] < entry["last_failure_at"]
    assert "Traceback" in entry["traceback"]
    assert dlq.stats() == {("default", "max_retries_exceeded"): 1}
    # When it is replayed, it runs again from attempt 0 (4 more attempts) and is back once
    assert fleet("dlq", "replay", result.id).exit_code == 0
    wait_until(lambda: redis_client.llen("fleet:diag:attempts:x") == 8, 40, message="rerun")
    wait_until(lambda: dlq.count(Filter()) == 1, 10, message="re-captured")


def test_replay_after_fix_runs_once_and_keeps_masked_secrets(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a permanent failure whose kwargs hold a password
    worker = worker_factory("default")
    result = celery_app.send_task(
        "service.tasks.diagnostics.until_fixed", args=["fx"], kwargs={"password": "hunter2"}
    )
    with pytest.raises(Exception, match="not fixed yet"):
        result.get(timeout=20)
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == 1, 10, message="entry")
    # Then the entry, the CLI and the worker log never show the password
    shown = fleet("dlq", "show", result.id, "--json")
    assert shown.exit_code == 0, shown.output
    entry = json.loads(shown.output)
    assert entry["kwargs"] == {"password": "***"}
    assert entry["reason"] == "non_retryable_error"
    listed = fleet("dlq", "list", "--json")
    assert "hunter2" not in listed.output and "hunter2" not in shown.output
    assert "hunter2" not in worker.log()
    # When the fix is deployed and the entry replayed twice
    redis_client.set("fleet:diag:fixed:fx", 1)
    first = fleet("dlq", "replay", result.id, "--json")
    second = fleet("dlq", "replay", "--queue", "default", "--json")
    assert json.loads(first.output) == {"replayed": 1, "already_gone": 0}
    assert "nothing to replay" in second.output
    # Then it ran exactly once, with the real password
    wait_until(lambda: redis_client.llen("fleet:diag:fixed-runs:fx") == 1, 20, message="run")
    assert redis_client.lrange("fleet:diag:fixed-runs:fx", 0, -1) == [b"hunter2"]
    assert dlq.count(Filter()) == 0
    assert dlq.stats() == {}


def test_hard_time_limit_kill_is_dead_lettered(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    worker_factory("default", "--soft-time-limit", "1", "--time-limit", "2")
    result = celery_app.send_task("service.tasks.diagnostics.hang", args=[5])
    with pytest.raises(Exception, match="TimeLimitExceeded"):
        result.get(timeout=20)
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter(reason="time_limit_exceeded")) == 1, 10, message="entry")
    assert dlq.find(result.id, ("default",))["task_name"] == "service.tasks.diagnostics.hang"


def test_failed_dlq_write_requeues_instead_of_acking(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker whose DLQ store is unreachable
    worker = worker_factory("default", env={"FLEET_DLQ_URL": "redis://127.0.0.1:1/0"})
    celery_app.send_task(
        "service.tasks.diagnostics.until_fixed", args=["nodlq"], task_id="nodlq-task"
    )
    # Then the message is rejected with requeue and comes back (runs again)
    wait_until(
        lambda: worker.log().count("until_fixed[nodlq-task] received") >= 2,
        30,
        message="redelivery",
    )
    assert "dead-letter write failed" in worker.log()
    # And once the fix is deployed the same message succeeds: nothing was lost
    redis_client.set("fleet:diag:fixed:nodlq", 1)
    wait_until(
        lambda: redis_client.llen("fleet:diag:fixed-runs:nodlq") == 1,
        30,
        message="eventual success",
    )


def test_cli_filters_purge_and_errors(redis_client: redis.Redis) -> None:
    # Given entries written directly
    dlq = dlq_reader()
    for i in range(30):
        entry = {
            "id": f"e{i}",
            "task_id": f"e{i}",
            "task_name": f"t.{i % 3}",
            "queue": "email" if i % 2 else "reports",
            "reason": "non_retryable_error" if i % 5 else "unknown_task",
            "last_failure_at": 1_700_000_000 + i,
            "first_failure_at": 1_700_000_000,
            "retries": 0,
            "kwargs": {"token": "abc"},
            "args": [],
        }
        dlq_writer().add(
            entry, {"headers": {}, "properties": {"delivery_tag": f"d{i}"}, "body": ""}
        )
    # Then filters combine
    out = json.loads(fleet("dlq", "list", "--queue", "email", "--task", "t.1", "--json").output)
    assert {e["id"] for e in out} == {f"e{i}" for i in range(30) if i % 2 and i % 3 == 1}
    assert all(e["kwargs"] == {"token": "***"} for e in out)
    page = json.loads(fleet("dlq", "list", "--limit", "7", "--offset", "7", "--json").output)
    assert [e["id"] for e in page] == [f"e{i}" for i in range(22, 15, -1)]
    since = fleet("dlq", "list", "--since", "2023-11-14T22:13:40+00:00", "--json")
    assert {e["id"] for e in json.loads(since.output)} == {f"e{i}" for i in range(20, 30)}
    stats = json.loads(fleet("dlq", "stats", "--json").output)
    assert sum(row["count"] for row in stats) == 30
    # And purge needs --yes, then removes exactly the filtered entries
    refused = fleet("dlq", "purge", "--reason", "unknown_task")
    assert refused.exit_code == 2 and "add --yes" in refused.output
    purged = fleet("dlq", "purge", "--reason", "unknown_task", "--yes", "--json")
    assert json.loads(purged.output) == {"purged": 6, "already_gone": 0}
    assert dlq.count(Filter()) == 24
    # And bad input gets clear errors
    assert "no dead-letter entry with id 'nope'" in fleet("dlq", "show", "nope").output
    assert "unknown queue 'mail'" in fleet("dlq", "list", "--queue", "mail").output
    assert "unknown reason" in fleet("dlq", "list", "--reason", "bad").output
    assert "neither ISO 8601" in fleet("dlq", "list", "--since", "yesterday").output
    assert "name entry ids, a filter" in fleet("dlq", "replay").output
    assert "nothing to replay" in fleet("dlq", "replay", "--task", "none").output
