"""Retries with backoff, rate limits and time limits, observed on real worker processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import redis
from harness import wait_until

from service.tasks.analytics import EXTERNAL_CALLS_KEY


def floats(client: redis.Redis, key: str) -> list[float]:
    return [float(v) for v in client.lrange(key, 0, -1)]


def test_retries_back_off_then_succeed(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a task that fails transiently twice (backoff 1s, 2s; no jitter)
    worker_factory("default")
    result = celery_app.send_task("service.tasks.diagnostics.flaky", args=["b", 2])
    # When it runs, it succeeds on the third attempt
    assert result.get(timeout=30) == 2
    attempts = floats(redis_client, "fleet:diag:attempts:b")
    assert len(attempts) == 3
    # Then the gaps between attempts grow (1s then 2s, give or take scheduling)
    first_gap, second_gap = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.8 <= first_gap < 1.9
    assert second_gap > first_gap + 0.5


def test_max_retries_ends_the_retries(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a task that always fails transiently (max_retries=3)
    worker_factory("default")
    result = celery_app.send_task("service.tasks.diagnostics.flaky", args=["m", 99])
    # Then it gives up after 1 + 3 attempts
    with pytest.raises(Exception, match="attempt 3 failed"):
        result.get(timeout=40)
    assert len(floats(redis_client, "fleet:diag:attempts:m")) == 4


def test_task_rate_limit_is_observed(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given 15 messages of a task limited to 5/s, queued before the worker starts
    for _ in range(15):
        celery_app.send_task("service.tasks.diagnostics.rate_limited", args=["r"])
    worker_factory("default", concurrency=4)
    wait_until(lambda: redis_client.llen("fleet:diag:rate:r") == 15, 30, message="15 runs")
    starts = sorted(floats(redis_client, "fleet:diag:rate:r"))
    # Then no one-second window holds more than 5 starts, and the 15 take over ~2 s
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s - start < 0.95]
        assert len(in_window) <= 6, in_window  # token bucket may release one early
    assert starts[-1] - starts[0] >= 1.8


def test_soft_time_limit_raises_inside_the_task(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker whose soft limit is 1s (hard 3s)
    worker_factory("default", "--soft-time-limit", "1", "--time-limit", "3")
    result = celery_app.send_task("service.tasks.diagnostics.busy", args=[2.5, "s"])
    # Then the task saw SoftTimeLimitExceeded, cleaned up, and failed
    with pytest.raises(Exception, match="SoftTimeLimitExceeded"):
        result.get(timeout=20)
    assert redis_client.lrange("fleet:diag:soft:s", 0, -1) == [b"soft_time_limit"]


def test_hard_time_limit_kills_the_child_and_the_worker_survives(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Given a worker whose hard limit is 2s and a 5s task that ignores the soft limit
    worker = worker_factory("default", "--soft-time-limit", "1", "--time-limit", "2")
    doomed = celery_app.send_task("service.tasks.diagnostics.hang", args=[5, "hard"])
    with pytest.raises(Exception, match="TimeLimitExceeded"):
        doomed.get(timeout=20)
    # Then the task never completed, and the same worker keeps serving
    assert redis_client.llen("fleet:diag:done:hard") == 0
    assert worker.alive()
    assert (
        celery_app.send_task("service.tasks.diagnostics.noop", args=["after"]).get(timeout=20)
        == "after"
    )


class _CountingAPI(BaseHTTPRequestHandler):
    hits: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        type(self).hits.append(time.time())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def external_api() -> Iterator[tuple[str, list[float]]]:
    hits: ClassVar[list[float]] = []
    handler = type("Handler", (_CountingAPI,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/enrich", hits
    server.shutdown()


def test_cluster_wide_rate_limit_holds_across_two_workers(
    celery_app: Any,
    redis_client: redis.Redis,
    worker_factory: Any,
    external_api: tuple[str, list[float]],
) -> None:
    # Given two workers (4 processes) sharing a budget of 4 calls per second
    url, hits = external_api
    env = {"FLEET_EXTERNAL_API_LIMIT": "4", "FLEET_EXTERNAL_API_WINDOW_SECONDS": "1"}
    worker_factory("analytics", env=env, concurrency=2)
    worker_factory("analytics", env=env, concurrency=2)
    # When 16 calls are requested at once
    results = [
        celery_app.send_task("service.tasks.analytics.enrich_event", args=[str(i), url])
        for i in range(16)
    ]
    for result in results:
        assert result.get(timeout=60) == {"ok": True}
    # Then the API saw every call, and the grants (Redis server times, as the tasks recorded
    # them) were never more than 4 in any one-second window. Arrival times at the API would
    # also count the workers' scheduling delays after a grant, which a loaded machine has.
    assert len(hits) == 16
    grants = sorted(float(t) for t in redis_client.lrange(EXTERNAL_CALLS_KEY, 0, -1))
    assert len(grants) == 16
    for i, start in enumerate(grants):
        assert len([g for g in grants[i:] if g - start < 1.0]) <= 4
    assert grants[-1] - grants[0] >= 3.0
