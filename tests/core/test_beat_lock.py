"""Beat with celery-redbeat: the schedule in Redis under the fleet's keys, exactly one beat
sending at a time. Two real `fleet beat` processes against a real redis-server: the second
waits while the first holds the lock; when the first dies without releasing it (SIGKILL, as
on node loss) the second takes over once the lock expires, and the schedule goes on from
where it was (its run count and last run kept in Redis), nothing sent by both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from harness import start_fleet, wait_until

from service.catalog.naming import (
    BEAT_LOCK_KEY,
    beat_entry_key,
    beat_schedule_key,
    priority_list_keys,
)

ENTRY = "snapshot-queues"
LOCK_TIMEOUT = 6


class Beat:
    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.process, self.log_path = name, process, log

    @property
    def origin_prefix(self) -> str:
        # Celery stamps each message it sends with the sender's `gen<pid>@<host>`
        return f"gen{self.process.pid}@"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def beats(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    started: list[Beat] = []

    def start(name: str) -> Beat:
        env = {
            **os.environ,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_RESULT_BACKEND": redis_url,
            "FLEET_SNAPSHOT_INTERVAL": "1",
            "FLEET_BEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
            "FLEET_BEAT_MAX_LOOP_SECONDS": "1",
            "FLEET_LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / f"{name}.log"
        process = start_fleet("beat", env, log)
        beat = Beat(name, process, log)
        started.append(beat)
        return beat

    yield start
    for beat in started:
        if beat.process.poll() is None:
            os.killpg(beat.process.pid, signal.SIGKILL)
            beat.process.wait(10)
        sys.stdout.write(f"\n----- {beat.name} -----\n{beat.log()[-4000:]}\n")


def sent(client: redis.Redis) -> list[str]:
    """The origin of every message waiting in the default queue (where beat's tasks go),
    oldest first (kombu LPUSHes; beat sends them all at one priority, to one list)."""
    origins = []
    for key in priority_list_keys("default"):
        for raw in reversed(client.lrange(key, 0, -1)):
            origins.append(json.loads(raw)["headers"]["origin"])
    return origins


def run_count(client: redis.Redis) -> int:
    meta = client.hget(beat_entry_key(ENTRY), "meta")
    return int(json.loads(meta)["total_run_count"]) if meta else 0


def test_two_beats_one_sends_the_other_takes_over_with_the_schedule(
    beats: Any, redis_client: redis.Redis
) -> None:
    # Given a first beat that holds the lock and sends the 1 s snapshot task
    first = beats("first")
    wait_until(lambda: redis_client.exists(BEAT_LOCK_KEY), 30, message="the first beat's lock")
    wait_until(lambda: len(sent(redis_client)) >= 2, 30, 0.2, "the first beat's sends")
    # When a second beat starts beside it, for a while
    second = beats("second")
    time.sleep(LOCK_TIMEOUT + 2)
    # Then only the first one sent anything; the second waits on the lock, alive
    origins = sent(redis_client)
    assert origins and all(o.startswith(first.origin_prefix) for o in origins), origins
    assert second.process.poll() is None, second.log()
    # And the schedule lives under the fleet's keys
    assert redis_client.zscore(beat_schedule_key(), beat_entry_key(ENTRY)) is not None
    beat_keys = [k.decode() for k in redis_client.keys("*beat*")]
    assert beat_keys and all(k.startswith("fleet:beat:") for k in beat_keys), beat_keys
    runs_before = run_count(redis_client)
    assert runs_before >= 2

    # When the first dies without releasing its lock (SIGKILL: a node lost)
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    killed_at, count_at_kill = time.monotonic(), len(sent(redis_client))

    # Then the second takes over once the lock expires, and sends on its own
    def second_sends() -> bool:
        return any(o.startswith(second.origin_prefix) for o in sent(redis_client))

    wait_until(second_sends, LOCK_TIMEOUT + 15, 0.2, "the second beat to take over")
    took = time.monotonic() - killed_at
    assert took <= LOCK_TIMEOUT + 5, took
    origins = sent(redis_client)
    # Nothing from the first after its death, nothing from the second before it
    assert all(o.startswith(first.origin_prefix) for o in origins[:count_at_kill])
    assert all(o.startswith(second.origin_prefix) for o in origins[count_at_kill:])
    # And the schedule went on from where it was: its run count kept growing, not reset
    wait_until(lambda: run_count(redis_client) > runs_before + 1, 15, 0.2, "runs to continue")

    # When the second stops gracefully, Then it releases the lock at once
    second.process.send_signal(signal.SIGTERM)
    second.process.wait(20)
    assert not redis_client.exists(BEAT_LOCK_KEY), second.log()
