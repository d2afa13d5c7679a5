"""Issue 17's acceptance scenario, as a new user would try it: two workers and a steady
stream of tasks; Redis killed for 20 s, then paused for 15 s, then full for 20 s. No worker
dies, every task whose publish succeeded runs, none is dead-lettered, and a new task is
picked up within seconds afterwards. About two minutes."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
import redis
from harness import unacked_count, wait_until

from service.app_factory import create_app
from service.config.settings import FleetSettings
from service.dlq.keys import index_key

RECORD = "service.tasks.diagnostics.record"
ENV = {
    "FLEET_ALLOW_SHORT_VISIBILITY_TIMEOUT": "true",
    "FLEET_VISIBILITY_TIMEOUT": "20",
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
    "FLEET_IDLE_POLL_SECONDS": "2",
}


class Stream:
    """Sends one task every `period` s from a thread; remembers which sends succeeded."""

    def __init__(self, producer: Any, period: float = 0.1) -> None:
        self.producer, self.period = producer, period
        self.accepted: list[str] = []
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

        self._next = 0
        self._lock = threading.Lock()

    def send(self, delay: float = 0.02) -> None:
        with self._lock:
            item = str(self._next)
            self._next += 1
        try:
            self.producer.send_task(RECORD, args=["accept", item, delay])
            self.accepted.append(item)
        except Exception:
            self.refused += 1  # the caller saw an error: the message was not queued

    def burst(self, count: int) -> None:
        """A backlog of slower tasks, so the fault finds tasks running and acks due."""
        for _ in range(count):
            self.send(0.2)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.send()
            time.sleep(self.period)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_workers_survive_a_killed_a_paused_and_a_full_redis(
    redis_factory: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = redis_factory(appendonly=True)
    client = redis.Redis.from_url(server.url)
    workers = [
        worker_factory("default", broker_url=server.url, env=ENV, concurrency=2) for _ in range(2)
    ]
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", server.url)
    producer = create_app(FleetSettings())
    with Stream(producer) as stream:
        stream.burst(60)
        # Redis killed for 20 s (AOF kept what it had acknowledged)
        server.stop(signal.SIGKILL)
        time.sleep(20)
        server.start()
        time.sleep(5)
        stream.burst(60)
        # then paused for 15 s (what a Redis being stopped does, and longer)
        client.execute_command("CLIENT", "PAUSE", 15_000, "WRITE")
        time.sleep(20)
        # then full for 20 s
        stream.burst(100)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        time.sleep(20)
        client.config_set("maxmemory", 0)
        time.sleep(2)
    alive = [w.alive() for w in workers]
    assert all(alive), [w.log()[-3000:] for w in workers if not w.alive()]
    ran = lambda: {k.decode() for k in client.hkeys("fleet:diag:runs:accept")}  # noqa: E731
    assert len(stream.accepted) > 100
    try:
        wait_until(lambda: set(stream.accepted) <= ran(), 60, message="every accepted task ran")
    except AssertionError:
        missing = sorted(set(stream.accepted) - ran(), key=int)
        raise AssertionError(
            f"{len(missing)} never ran: {missing[:30]}; unacked {unacked_count(client)}; "
            f"lists {[(k, client.llen(k)) for k in client.keys('default*')]}"
        ) from None
    assert client.zcard(index_key("default")) == 0, "dead-lettered for a transient fault"
    # A new task is picked up within seconds
    producer.send_task(RECORD, args=["canary", "c"])
    wait_until(lambda: client.hexists("fleet:diag:runs:canary", "c"), 10, message="canary")
