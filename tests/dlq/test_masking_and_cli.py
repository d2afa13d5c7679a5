"""Items 5, 6 and the CLI part of 10 of the hostile-input review: secrets never shown (raw
bodies, positional arguments, exception text, worker logs), message data never read as
Rich markup, and a Redis that is down or hung gives one line, not a traceback."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from envelopes import call_body, envelope
from harness import REPO, free_port, wait_until
from typer.testing import CliRunner

from service.cli import _register_subcommands, cli
from service.dlq.access import dlq_reader, dlq_writer
from service.dlq.keys import entries_key, envelopes_key
from service.dlq.reader import Filter

runner = CliRunner()
_register_subcommands()
SECRET = "hunter2"


def fleet(*args: str) -> Any:
    return runner.invoke(cli, list(args))


def test_secrets_in_arguments_bodies_and_exceptions_are_never_shown(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    redis_client.lpush(
        "default",
        envelope(
            "service.tasks.diagnostics.noop",
            call_body(password=SECRET, other=1),
            task_id="poison-body",
        ),
    )
    # Celery's per-task log lines on: they must be masked too
    worker = worker_factory("default", env={"FLEET_LOG_EVERY_TASK": "true"})
    # A password passed positionally, one in an exception message, one in a poison body
    positional = celery_app.send_task("service.tasks.diagnostics.until_fixed", args=["pos", SECRET])
    raised = celery_app.send_task(
        "service.tasks.diagnostics.fail", args=[f"login failed: password={SECRET}"]
    )
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == 3, 30, message="three entries")
    by_id = {e["id"]: e for e in dlq.page(Filter())}
    assert by_id[positional.id]["args"] == ["pos", "***"]
    assert "***" in by_id[raised.id]["exception_message"]
    assert "***" in by_id["poison-body"]["raw_body"]
    for entry_id in (positional.id, raised.id, "poison-body"):
        for args in (["--json"], []):
            shown = fleet("dlq", "show", entry_id, *args)
            assert shown.exit_code == 0, shown.output
            assert SECRET not in shown.output
    listed = fleet("dlq", "list", "--json")
    assert SECRET not in listed.output
    assert SECRET not in json.dumps(
        [json.loads(v) for v in redis_client.hvals(entries_key("default"))]
    )
    # And the worker's logs ("received" lines, failures, tracebacks) never carry it
    assert positional.id in worker.log()
    assert SECRET not in worker.log()
    # The replay copy keeps the real value (the task needs it)
    stored = redis_client.hget(envelopes_key("default"), positional.id)
    assert stored is not None and SECRET in base64.b64decode(json.loads(stored)["body"]).decode()


def test_published_argsrepr_is_masked_for_flower(
    celery_app: Any, redis_client: redis.Redis
) -> None:
    # Flower's task views show the argsrepr/kwargsrepr that travel with the message
    celery_app.send_task(
        "service.tasks.diagnostics.until_fixed", args=["run", SECRET], kwargs={}, queue="default"
    )
    (raw,) = redis_client.lrange("default\x06\x166", 0, -1) or redis_client.lrange("default", 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == "['run', '***']"
    assert SECRET not in headers["argsrepr"] + headers["kwargsrepr"]


MARKUP = "[/bold]"


def test_markup_in_message_data_is_shown_as_text(redis_client: redis.Redis) -> None:
    entry = {
        "id": "[red]id[/red]",
        "task_id": "[red]id[/red]",
        "task_name": MARKUP,
        "queue": "default",
        "reason": "unknown_task",
        "exception_type": "[/]",
        "exception_message": "[/]",
        "last_failure_at": 1_700_000_000,
        "first_failure_at": 1_700_000_000,
        "retries": 0,
        "args": ["[/]"],
        "kwargs": {},
    }
    dlq_writer().add(entry, {"headers": {}, "properties": {"delivery_tag": "t"}, "body": ""})
    listed = fleet("dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert MARKUP in listed.output and "[/]" in listed.output
    shown = fleet("dlq", "show", "[red]id[/red]")
    assert shown.exit_code == 0, shown.output
    assert "[red]id[/red]" in shown.output
    missing = fleet("dlq", "show", "[/]")
    assert missing.exit_code == 1
    assert "no dead-letter entry with id '[/]'" in missing.output
    bad_queue = fleet("dlq", "list", "--queue", "[/]")
    assert bad_queue.exit_code == 2 and "unknown queue '[/]'" in bad_queue.output


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def _fleet_dlq(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}
    return subprocess.run(
        [sys.executable, "-m", "service", "dlq", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("state", ["down", "hung"])
def test_fleet_dlq_with_redis_unavailable_prints_one_line(state: str, hung_redis: str) -> None:
    url = hung_redis if state == "hung" else f"redis://:pw@127.0.0.1:{free_port()}/0"
    # Hung: one command (each waits for the 10 s socket timeout).
    commands = [["list"], ["stats"], ["show", "x"], ["replay", "--all"]]
    for command in commands[:1] if state == "hung" else commands:
        result = _fleet_dlq(url, *command)
        assert result.returncode == 1, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Redis is unavailable" in lines[0], (command, result.stderr)
        assert "Traceback" not in result.stderr and "pw@" not in result.stderr


def test_task_events_flower_shows_carry_no_secrets(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with celery_app.connection_for_read() as connection:
            receiver = celery_app.events.Receiver(connection, handlers={"*": events.append})
            ready.set()
            with contextlib.suppress(Exception):
                receiver.capture(limit=None, timeout=20, wakeup=False)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    worker_factory("default", env={"FLEET_TASK_EVENTS": "true"})
    time.sleep(1)
    failed = celery_app.send_task(
        "service.tasks.diagnostics.fail", args=[f"login failed: password={SECRET}"]
    )
    positional = celery_app.send_task("service.tasks.diagnostics.until_fixed", args=["ev", SECRET])

    def seen(kind: str, task_id: str) -> bool:
        return any(e.get("type") == kind and e.get("uuid") == task_id for e in events)

    wait_until(
        lambda: seen("task-failed", failed.id) and seen("task-received", positional.id),
        30,
        message="events",
    )
    assert SECRET not in json.dumps(events, default=str)
    received = next(
        e for e in events if e.get("type") == "task-received" and e.get("uuid") == positional.id
    )
    assert received["args"] == "['ev', '***']"
