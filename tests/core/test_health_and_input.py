"""Heartbeat liveness, warm shutdown, and clear errors on bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
from harness import wait_until
from kombu.exceptions import EncodeError

from service.errors import RoutingError


def probe(worker: Any, max_age: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "probe", "--max-age", max_age],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_heartbeat_goes_stale_when_the_worker_stops(worker_factory: Any) -> None:
    # Given a consuming worker, the probe passes
    worker = worker_factory("default")
    time.sleep(1.2)
    first = worker.heartbeat.stat().st_mtime
    wait_until(lambda: worker.heartbeat.stat().st_mtime > first, 5, message="a second beat")
    ok = probe(worker, "3")
    assert ok.returncode == 0, ok.stderr
    assert "ok: last heartbeat" in ok.stdout
    # When the worker is frozen (SIGSTOP: alive, but its event loop does nothing)
    os.killpg(worker.process.pid, signal.SIGSTOP)
    try:
        time.sleep(3.5)
        stale = probe(worker, "3")
    finally:
        os.killpg(worker.process.pid, signal.SIGCONT)
    # Then the probe fails and says why
    assert stale.returncode == 1
    assert "stale: last heartbeat" in stale.stderr
    # And after a stop there is no fresh beat either
    worker.stop()
    time.sleep(3.5)
    assert probe(worker, "3").returncode == 1


def test_probe_without_heartbeat_file(tmp_path: Any) -> None:
    env = dict(os.environ, FLEET_HEARTBEAT_FILE=str(tmp_path / "none"))
    done = subprocess.run(
        [sys.executable, "-m", "service", "probe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no heartbeat file" in done.stderr


def test_unknown_queue_at_call_time_is_an_error(celery_app: Any) -> None:
    from celery.exceptions import QueueNotFound

    with pytest.raises(QueueNotFound, match="nope"):
        celery_app.send_task("service.tasks.diagnostics.noop", args=[1], queue="nope")


def test_non_json_argument_is_an_error(celery_app: Any, redis_client: redis.Redis) -> None:
    with pytest.raises(EncodeError, match="not JSON serializable"):
        celery_app.send_task("service.tasks.diagnostics.noop", args=[object()])
    assert redis_client.llen("default") == 0


def test_priority_out_of_range_is_an_error(celery_app: Any) -> None:
    with pytest.raises(RoutingError, match=r"priority must be an int 0\.\.9"):
        celery_app.send_task("service.tasks.diagnostics.noop", args=[1], priority=42)


def test_unknown_queue_for_the_worker_is_an_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service", "worker", "-Q", "emial"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown queue 'emial'" in done.stderr
