"""Issue 17 without workers: one classification of Redis errors against a real full,
paused or odd Redis; DLQ writes under a full Redis; the last-resort parking; a publish with
a foreign value at the wake key; `fleet dlq replay` refusing what it cannot replay; the
socket timeout against the in-cluster preStop pause."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.exceptions import Reject
from kombu import Connection
from kombu.exceptions import OperationalError
from typer.testing import CliRunner

from infra.redis_incluster import PRE_STOP_PAUSE_WRITES
from service.catalog.naming import wake_key
from service.cli import _register_subcommands, cli
from service.config.redis_client import SOCKET_TIMEOUT_SECONDS
from service.config.redis_faults import RedisUnavailable, is_redis_unavailable
from service.dlq.access import dlq_reader, dlq_writer
from service.dlq.keys import PARKED_KEY, entries_key
from service.dlq.reader import Filter
from service.dlq.safe_write import write_entry
from service.transport.channel import register

runner = CliRunner()
_register_subcommands()


@pytest.fixture
def full(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The session Redis at maxmemory under noeviction (as a production Redis fills up)."""
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    yield redis_client
    redis_client.config_set("maxmemory", 0)


def refused(call: Any) -> BaseException:
    with pytest.raises(redis.RedisError) as caught:
        call()
    return caught.value


def test_every_form_of_a_full_redis_is_unavailable(full: redis.Redis) -> None:
    forms = {
        "command": lambda: full.lpush("q", "m"),
        "transaction (kombu's ack)": lambda: (
            full.pipeline().zrem("z", "t").hdel("h", "t").execute()
        ),
        "pipeline": lambda: full.pipeline(transaction=False).lpush("q", "m").execute(),
        "script": lambda: full.eval("return redis.call('LPUSH', KEYS[1], 'm')", 1, "q"),
    }
    for name, call in forms.items():
        error = refused(call)
        assert is_redis_unavailable(error), f"{name}: {type(error).__name__}: {error}"
        # wrapped as kombu and Celery wrap it
        try:
            raise OperationalError(str(error)) from error
        except OperationalError as wrapped:
            assert is_redis_unavailable(wrapped), name
        assert is_redis_unavailable(Reject(error, requeue=False)), name


def test_content_errors_are_not_unavailable(redis_client: redis.Redis) -> None:
    redis_client.set("s", "a string")
    assert not is_redis_unavailable(refused(lambda: redis_client.lpush("s", "m")))
    script_error = refused(lambda: redis_client.eval("return redis.error_reply('bad')", 0))
    assert not is_redis_unavailable(script_error)
    # An error raised while handling an outage is its own kind (no __context__ guessing).
    try:
        try:
            raise redis.ConnectionError("gone")
        except redis.ConnectionError:
            raise ValueError("bad content") from None
    except ValueError as content:
        assert not is_redis_unavailable(content)


def test_a_gone_redis_and_a_long_pause_are_unavailable(redis_client: redis.Redis) -> None:
    from harness import free_port

    gone = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=None)
    assert is_redis_unavailable(refused(gone.ping))
    paused = redis.Redis.from_url(
        redis_client.connection_pool.connection_kwargs.get("path")
        or f"redis://127.0.0.1:{redis_client.connection_pool.connection_kwargs['port']}/0",
        socket_timeout=0.3,
        retry=None,
    )
    redis_client.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
    assert is_redis_unavailable(refused(lambda: paused.lpush("q", "m")))


def _entry(entry_id: str, task_name: str = "service.tasks.diagnostics.fail") -> dict[str, Any]:
    return {
        "id": entry_id,
        "task_id": entry_id,
        "task_name": task_name,
        "queue": "default",
        "reason": "non_retryable_error",
        "exception_type": "PermanentTaskError",
        "exception_message": "boom",
        "traceback": "Traceback...",
        "last_failure_at": 1_700_000_000,
        "first_failure_at": 1_700_000_000,
        "retries": 0,
        "worker": "w",
        "occurrences": 1,
        "args": [1],
        "kwargs": {},
        "raw_body": None,
    }


def test_a_dlq_write_under_a_full_redis_waits_instead_of_degrading(full: redis.Redis) -> None:
    # When Redis is full, the write raises RedisUnavailable (the caller keeps the message)
    with pytest.raises(RedisUnavailable):
        write_entry(dlq_writer(), _entry("t-1"), {"headers": {"task": "x"}})
    # Then no degraded (minimal) entry was written for a transient fault
    full.config_set("maxmemory", 0)
    assert dlq_reader().count(Filter()) == 0


def test_an_entry_refused_in_every_form_is_parked(redis_client: redis.Redis) -> None:
    # Given a foreign value at the queue's entries key (every DLQ write for it fails)
    redis_client.set(entries_key("default"), "not a hash")
    # When an entry is written
    field = write_entry(dlq_writer(), _entry("t-2"), {"headers": {"task": "x"}})  # type: ignore[arg-type]
    # Then the message is parked where `fleet dlq parked` shows it
    parked = json.loads(redis_client.hget(PARKED_KEY, field) or b"{}")
    assert parked["id"].startswith("t-2") and parked["envelope"] == {"headers": {"task": "x"}}
    shown = runner.invoke(cli, ["dlq", "parked", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [row["field"] for row in json.loads(shown.output)] == [field]
    listed = runner.invoke(cli, ["dlq", "list"])
    assert "1 parked messages" in listed.output


def test_publish_with_a_foreign_value_at_the_wake_key_succeeds_once(
    celery_app: Any, redis_client: redis.Redis
) -> None:
    # Given a string under the default queue's wake key
    redis_client.set(wake_key("default"), "not a list")
    # When a task is sent, the caller sees no error and the message is queued once
    celery_app.send_task("service.tasks.diagnostics.noop", args=[1])
    lengths = sum(redis_client.llen(k) for k in redis_client.keys("default*"))
    assert lengths == 1
    # And the wake key holds a token again (an idle worker is woken)
    assert redis_client.type(wake_key("default")) == b"list"


@pytest.mark.parametrize(
    ("entry_extra", "envelope", "why"),
    [
        ({}, {"unreplayable": "TypeError: not JSON"}, "could not be stored"),
        ({"minimal": True}, None, "minimal entry"),
        ({}, {"headers": {"task": "gone.task"}, "properties": {}}, "not registered"),
    ],
)
def test_replay_refuses_what_it_cannot_replay_and_keeps_it(
    redis_client: redis.Redis, entry_extra: dict[str, Any], envelope: Any, why: str
) -> None:
    dlq = dlq_reader()
    entry = {**_entry("r-1"), **entry_extra}
    envelope = envelope or {
        "headers": {"task": "service.tasks.diagnostics.fail", "id": "r-1"},
        "properties": {"delivery_tag": "t", "priority": 0},
        "body": "",
    }
    dlq_writer().add(entry, envelope)  # type: ignore[arg-type]
    before = dlq.get("default", "r-1")
    result = runner.invoke(cli, ["dlq", "replay", "r-1"])
    assert result.exit_code == 1, result.output
    assert why in result.output and "refused r-1" in result.output
    assert dlq.get("default", "r-1") == before
    assert sum(redis_client.llen(k) for k in redis_client.keys("default*")) == 0
    # --force replays it anyway
    forced = runner.invoke(cli, ["dlq", "replay", "r-1", "--force", "--json"])
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.output)["replayed"] == 1


def test_socket_timeout_outlasts_the_in_cluster_prestop_pause() -> None:
    pause_ms = int(re.search(r"CLIENT PAUSE (\d+)", " ".join(PRE_STOP_PAUSE_WRITES))[1])  # type: ignore[index]
    assert pause_ms / 1000 < SOCKET_TIMEOUT_SECONDS


def test_a_queue_bind_a_full_redis_refuses_is_a_connection_error(
    full: redis.Redis, redis_url: str
) -> None:
    # Given the fleet transport on a full Redis
    register()
    with Connection(redis_url) as connection:
        channel = connection.channel()
        channel.exchange_declare("fleet-bind-test", "direct")
        # When a consumer binds its queue (as Celery's remote control does at worker start)
        with pytest.raises(connection.connection_errors) as caught:
            channel.queue_bind("fleet-bind-test", "fleet-bind-test", "fleet-bind-test")
        # Then it is an error Celery's consumer recovers from (it reconnects and binds again),
        # not one that stops the worker, and it says why
        assert isinstance(caught.value, redis.ConnectionError)
        assert isinstance(caught.value.__cause__, redis.exceptions.OutOfMemoryError)
    # And once Redis takes writes again, the bind goes through
    full.config_set("maxmemory", 0)
    with Connection(redis_url) as connection:
        channel = connection.channel()
        channel.exchange_declare("fleet-bind-test", "direct")
        channel.queue_bind("fleet-bind-test", "fleet-bind-test", "fleet-bind-test")
    assert full.smembers("_kombu.binding.fleet-bind-test")
