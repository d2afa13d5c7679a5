"""With FLEET_DLQ_URL on another Redis, replay claims, pushes to the broker, then drops the
claim; a crash in between is finished by the next replay (at least once, never lost)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from envelopes import call_body, envelope

from service.dlq.keys import claims_key
from service.dlq.reader import Filter
from service.dlq.writer import DLQWriter

# The store caps task names in its index keys to the tasks the app registers: build the app,
# as a worker and `fleet dlq` do.
pytestmark = pytest.mark.usefixtures("celery_app")


def entry(entry_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {
            "id": entry_id,
            "task_id": entry_id,
            "task_name": "service.tasks.diagnostics.noop",
            "queue": "default",
            "reason": "non_retryable_error",
            "last_failure_at": 1.0e9,
            "first_failure_at": 1.0e9,
            "retries": 0,
            "args": [1],
            "kwargs": {},
        },
        json.loads(envelope("service.tasks.diagnostics.noop", call_body(1), task_id=entry_id)),
    )


def test_replay_goes_to_the_broker_not_the_dlq_redis(redis_factory: Any) -> None:
    dlq_client = redis.Redis.from_url(redis_factory().url)
    broker = redis.Redis.from_url(redis_factory().url)
    store = DLQWriter(dlq_client, broker=broker)
    store.add(*entry("a"))
    # When replayed twice
    assert store.replay("default", "a") is True
    assert store.replay("default", "a") is False
    # Then the broker got it exactly once, the DLQ Redis has no queue list and no claim
    assert broker.llen("default") == 1
    assert json.loads(broker.lindex("default", 0))["headers"]["id"] == "a"
    assert dlq_client.exists("default") == 0
    assert dlq_client.hlen(claims_key("default")) == 0
    assert store.reader.count(Filter()) == 0


def test_a_replay_interrupted_after_the_claim_is_finished_later(redis_factory: Any) -> None:
    dlq_client = redis.Redis.from_url(redis_factory().url)
    broker_server = redis_factory()
    broker = redis.Redis.from_url(broker_server.url)
    store = DLQWriter(dlq_client, broker=broker)
    store.add(*entry("b"))
    # Given the broker dies between the claim and the push
    broker_server.stop()
    try:
        store.replay("default", "b")
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("the push should have failed")
    assert store.reader.count(Filter()) == 0 and dlq_client.hlen(claims_key("default")) == 1
    # When the broker is back and the next replay runs
    broker_server.start()
    assert store.resume_claims() == 1
    # Then the message was delivered once and nothing is left behind
    assert broker.llen("default") == 1
    assert dlq_client.hlen(claims_key("default")) == 0
