"""Redis stops, hangs or restarts under the exporter: /metrics keeps answering fast with
`celery_exporter_up 0`, no stale queue values, and recovers on its own. The broker password
never reaches the logs."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from exporter_harness import Exporter, Scrape, run_exporter
from harness import RedisServer

from service.catalog.queues import CATALOG

PASSWORD = "s3cret-exporter-pw"


def _protect(server: RedisServer) -> redis.Redis:
    """A fresh redis-server has no password; set it (and return an authenticated client)."""
    redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
    return redis.Redis(port=server.port, password=PASSWORD)


def _assert_down(scrape: Scrape) -> None:
    assert scrape.value("celery_exporter_up") == 0
    for name in (
        "celery_queue_length",
        "celery_queue_oldest_task_age_seconds",
        "celery_dlq_length",
    ):
        assert scrape.series(name) == {}, f"{name} exported while Redis is down"


def _assert_up(scrape: Scrape, default_length: int) -> None:
    assert scrape.value("celery_exporter_up") == 1
    lengths = scrape.by_queue("celery_queue_length")
    assert set(lengths) == set(CATALOG.names)
    assert lengths["default"] == default_length


def test_exporter_survives_redis_outage_and_recovers(
    redis_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    # Given a private, password-protected Redis with 2 waiting messages and an exporter on it
    server = redis_factory()
    client = _protect(server)
    client.lpush("default", b"{}", b"{}")
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    with run_exporter(url, tmp_path) as exporter:
        healthy = exporter.scrape()
        _assert_up(healthy, 2)

        # When Redis stops
        server.stop()
        down = exporter.scrape()
        # Then /metrics still answers, says down, counts the error and drops queue values
        _assert_down(down)
        assert down.errors_total() == healthy.errors_total() + 1
        assert down.seconds < 3
        assert exporter.get("/healthz")[0] == 200

        # When Redis comes back on the same port (empty: no persistence here)
        server.start()
        _protect(server).lpush("default", b"{}")
        # Then the next scrape recovers by itself
        _assert_up(exporter.scrape(), 1)

        # When Redis restarts between two scrapes (the pooled connection is now dead)
        server.restart()
        _protect(server)
        # Then the first scrape after it succeeds: a stale connection is not an outage
        back = exporter.scrape()
        _assert_up(back, 0)
        assert back.errors_total() == down.errors_total()

        _assert_hang_is_bounded(exporter, server)
        assert exporter.stop() == 0
    # And the password never appeared in the exporter's output, though it logged the outage
    log = exporter.log()
    assert "scrape failed" in log and "recovered" in log
    assert PASSWORD not in log


def _assert_hang_is_bounded(exporter: Exporter, server: RedisServer) -> None:
    # Given a Redis that accepts connections but never answers (SIGSTOP)
    process: Any = server.process
    before = exporter.scrape().errors_total()
    process.send_signal(signal.SIGSTOP)
    try:
        # When Prometheus scrapes, Then the socket timeout (2 s) bounds the scrape
        hung = exporter.scrape()
        _assert_down(hung)
        assert 1.5 < hung.seconds < 5, hung.seconds
        assert hung.errors_total() == before + 1
        assert hung.series("celery_exporter_errors_total")[(("error", "TimeoutError"),)] >= 1
    finally:
        process.send_signal(signal.SIGCONT)
    # And once Redis answers again so does the exporter
    assert exporter.scrape().value("celery_exporter_up") == 1
