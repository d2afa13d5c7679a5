"""The collector in-process against a real Redis: one round trip per scrape, nothing stale
when Redis fails, secrets scrubbed; queue_stats reads a DLQ kept on its own Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.connection
from harness import RedisServer, free_port

from service.catalog.naming import priority_list_key
from service.catalog.queues import CATALOG
from service.config.settings import FleetSettings
from service.dlq.keys import index_key as dlq_index_key
from service.exporter.queue_stats import read_queue_stats
from service.exporter.server import build_collector, scrub, secrets_of


def _settings(broker_url: str, **extra: Any) -> FleetSettings:
    return FleetSettings(CELERY_BROKER_URL=broker_url, **extra)


def _values(collector: Any) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_one_round_trip_per_scrape(
    redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given messages in two priority sub-lists and a warmed-up collector (connection open)
    redis_client.lpush(priority_list_key("email", 0), b"{}")
    redis_client.lpush(priority_list_key("email", 9), b"{}", b"{}")
    collector, clients = build_collector(_settings(redis_url))
    _values(collector)
    writes: list[bytes] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        writes.append(command)
        send(self, command, check_health)

    before = redis_client.info("commandstats")
    # When Prometheus scrapes
    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        values = _values(collector)
    after = redis_client.info("commandstats")
    # Then every command went out in ONE write (a single pipeline round trip)...
    assert len(writes) == 1
    # ...made of LLEN per priority sub-list, LINDEX per non-empty one (inside one script that
    # returns only the send time, never the message) and ZCARD per DLQ
    lists = len(CATALOG) * len(FleetSettings.model_fields["priority_steps"].default)

    def calls(stats: dict[str, Any], command: str) -> int:
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    assert calls(after, "llen") - calls(before, "llen") == lists
    assert calls(after, "lindex") - calls(before, "lindex") == 2
    assert calls(after, "zcard") - calls(before, "zcard") == len(CATALOG)
    assert values[("celery_queue_length", ("email",))] == 3
    assert values[("celery_exporter_up", ())] == 1
    for client in clients:
        client.close()


def test_redis_down_reports_up_zero_without_stale_values(caplog: pytest.LogCaptureFixture) -> None:
    # Given a collector whose Redis (with a password in its URL) is not listening
    url = f"redis://:pw-never-logged@127.0.0.1:{free_port()}/0"
    collector, _ = build_collector(_settings(url))
    # When it is scraped twice
    with caplog.at_level(logging.DEBUG, logger="service.exporter.collector"):
        _values(collector)
        values = _values(collector)
    # Then up is 0, the error counter counted both, and no queue gauge has a value
    assert values[("celery_exporter_up", ())] == 0
    assert values[("celery_exporter_errors_total", ("ConnectionError",))] == 2
    assert not [key for key in values if key[0].startswith(("celery_queue", "celery_dlq"))]
    # And the outage is logged once at WARNING (the rest at DEBUG), without the password
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pw-never-logged" not in caplog.text


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        ("redis://:pw@h:1/0", "bad url redis://:pw@h:1/0 here", "bad url *** here"),
        ("redis://user:pw@h:1/0", "AUTH pw failed", "AUTH *** failed"),
        ("redis://h:1/0", "Error 111 connecting to h:1", "Error 111 connecting to h:1"),
    ],
)
def test_scrub_removes_urls_and_passwords(url: str, text: str, expected: str) -> None:
    assert scrub(text, secrets_of(_settings(url))) == expected


def test_dlq_on_its_own_redis_is_read_there(
    redis_client: redis.Redis, redis_url: str, redis_factory: Callable[..., RedisServer]
) -> None:
    # Given the DLQ on a separate Redis (FLEET_DLQ_URL) holding 2 entries for `reports`
    dlq_server = redis_factory()
    dlq_client = redis.Redis.from_url(dlq_server.url)
    dlq_client.zadd(dlq_index_key("reports"), {"a": 1, "b": 2})
    redis_client.zadd(dlq_index_key("reports"), {"decoy": 1})
    settings = _settings(redis_url, dlq_url=dlq_server.url)
    # When the stats are read (default clients come from settings)
    stats = read_queue_stats(redis_client, settings, dlq_client=dlq_client)
    # Then the DLQ length comes from the DLQ Redis, not the broker
    assert stats["reports"].dlq_length == 2
    collector, clients = build_collector(settings)
    assert _values(collector)[("celery_dlq_length", ("reports",))] == 2
    for client in clients:
        client.close()


def test_a_key_of_the_wrong_type_does_not_blank_other_queues(
    redis_client: redis.Redis, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a string where a priority sub-list and a DLQ index should be, and real backlog
    redis_client.set(priority_list_key("email", 3), "not a list")
    redis_client.set(dlq_index_key("reports"), "not a zset")
    redis_client.lpush(priority_list_key("email", 0), b"{}")
    redis_client.lpush(priority_list_key("reports", 0), b"{}", b"{}")
    collector, clients = build_collector(_settings(redis_url))
    # When Prometheus scrapes
    with caplog.at_level(logging.WARNING, logger="service.exporter.queue_stats"):
        values = _values(collector)
    # Then the exporter is up and every queue keeps its gauges; the bad keys count as empty
    assert values[("celery_exporter_up", ())] == 1
    assert values[("celery_queue_length", ("email",))] == 1
    assert values[("celery_queue_length", ("reports",))] == 2
    assert values[("celery_dlq_length", ("reports",))] == 0
    assert {("celery_queue_length", (spec.name,)) for spec in CATALOG} <= set(values)
    assert "not of the type a queue uses" in caplog.text
    for client in clients:
        client.close()


def test_oldest_age_is_read_without_fetching_the_message(
    redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 5 MB oldest message sent 30 s ago (kombu's JSON layout)
    import json

    message = {
        "body": "A" * 5_000_000,
        "headers": {"fleet_sent_at": 1_700_000_000.0, "task": "t"},
        "properties": {"delivery_tag": "x"},
    }
    redis_client.lpush(priority_list_key("email", 0), json.dumps(message))
    settings = _settings(redis_url)
    # When the stats are read, the reply holds numbers only (not the 5 MB message)
    received: list[int] = []
    read = redis.connection.AbstractConnection.read_response

    def measuring(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = read(self, *args, **kwargs)
        received.append(len(repr(reply)))
        return reply

    monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", measuring)
    stats = read_queue_stats(redis_client, settings, now=1_700_000_030.0)
    assert stats["email"].oldest_age_seconds == pytest.approx(30.0)
    assert max(received) < 10_000
