"""Item 10 of the hostile-input review: sender-chosen task names must not create one metric
series and one Redis index key each."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import redis
from envelopes import call_body, envelope
from harness import wait_until
from typer.testing import CliRunner

from service.cli import _register_subcommands, cli
from service.dlq.access import dlq_reader
from service.dlq.keys import task_index_key
from service.dlq.reader import Filter

NAMES = 300


def test_unknown_task_names_share_one_label_and_one_index(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    for i in range(NAMES):
        redis_client.lpush("default", envelope(f"junk.task.{i}", call_body(i), task_id=f"j{i}"))
    worker = worker_factory("default")
    dlq = dlq_reader()
    wait_until(lambda: dlq.count(Filter()) == NAMES, 60, message="all dead-lettered")
    # One shared index key, not one per name
    task_indexes = redis_client.keys("fleet:dlq:*:by-task:*")
    assert task_indexes == [task_index_key("default", "junk.task.0").encode()]
    assert task_indexes == [b"fleet:dlq:{default}:by-task:(unregistered)"]
    # One metric series for them all
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics") as page:
        text = page.read().decode()
    series = [
        line
        for line in text.splitlines()
        if line.startswith("celery_task_dead_lettered_total{") and "junk.task" not in line
    ]
    assert len(series) == 1 and 'task_name="(unregistered)"' in series[0]
    assert "junk.task" not in text
    # And each entry keeps its real name and is found by it
    _register_subcommands()
    found = CliRunner().invoke(cli, ["dlq", "list", "--task", "junk.task.7", "--json"])
    assert [e["id"] for e in json.loads(found.output)] == ["j7"]
