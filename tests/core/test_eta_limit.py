"""Item 8 of the hostile-input review: a countdown/ETA beyond what the visibility timeout
allows ran the task once per timeout. It is now refused at send time with a clear error;
delays inside the window run exactly once, proven with a real worker and a visibility
timeout of seconds."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from harness import wait_until

from service.app_factory import create_app
from service.config.celery_app import max_delay_seconds
from service.config.settings import FleetSettings
from service.errors import EtaBeyondVisibility

RECORD = "service.tasks.diagnostics.record"
SHORT = {
    "FLEET_ALLOW_SHORT_VISIBILITY_TIMEOUT": "true",
    "FLEET_VISIBILITY_TIMEOUT": "6",
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
}


def test_default_window_is_visibility_minus_the_longest_hard_limit() -> None:
    assert max_delay_seconds(FleetSettings()) == 3600 - 1800


def _queued(client: redis.Redis) -> int:
    return sum(int(client.llen(key)) for key in client.keys("default*"))


def test_a_countdown_beyond_the_window_is_refused_at_send_time(
    celery_app: Any, redis_client: redis.Redis
) -> None:
    with pytest.raises(EtaBeyondVisibility, match="FLEET_VISIBILITY_TIMEOUT"):
        celery_app.send_task(RECORD, args=["eta", "x"], countdown=7200)
    later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(EtaBeyondVisibility):
        celery_app.send_task(RECORD, args=["eta", "y"], eta=later)
    from service.tasks.diagnostics import record

    with pytest.raises(EtaBeyondVisibility):
        record.apply_async(args=["eta", "z"], countdown=4000)
    assert _queued(redis_client) == 0
    # Inside the window it is accepted
    celery_app.send_task(RECORD, args=["eta", "ok"], countdown=600)
    assert _queued(redis_client) == 1


def test_delays_run_once_with_a_real_worker_and_a_short_visibility_timeout(
    redis_client: redis.Redis, redis_url: str, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SHORT.items():
        monkeypatch.setenv(name, value)
    producer = create_app(FleetSettings())
    from service import app

    app.set_current()  # the short window is this producer's only
    worker_factory("default", env=SHORT)
    # 3.5x the visibility timeout: refused (it used to run 4 times)
    with pytest.raises(EtaBeyondVisibility):
        producer.send_task(RECORD, args=["eta-run", "far"], countdown=21)
    # Inside the window: runs exactly once, even after two visibility timeouts
    producer.send_task(RECORD, args=["eta-run", "near"], countdown=2)
    wait_until(lambda: redis_client.hget("fleet:diag:runs:eta-run", "near"), 20, message="run")
    time.sleep(13)
    assert redis_client.hgetall("fleet:diag:runs:eta-run") == {b"near": b"1"}
    assert redis_client.hlen("unacked") == 0


def test_a_raw_message_with_a_far_eta_is_dead_lettered_not_held(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # A producer that bypasses the send-time check (raw push, another client library)
    from envelopes import call_body, envelope

    from service.dlq.capture import store

    raw = json.loads(envelope(RECORD, call_body("eta-raw", "far"), task_id="far-eta"))
    raw["headers"]["eta"] = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    redis_client.lpush("default", json.dumps(raw))
    worker_factory("default", env=SHORT)
    wait_until(lambda: store().get("default", "far-eta"), 15, message="dead-lettered")
    assert "eta" in store().get("default", "far-eta")["exception_message"]  # type: ignore[index]
    assert redis_client.hlen("unacked") == 0
    assert not redis_client.exists("fleet:diag:runs:eta-raw")
