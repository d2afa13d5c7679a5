"""A kombu channel closed after a Redis error is "Redis unavailable" to the one classification
(service.config.redis_faults), in every shape its callers meet it: raw (a task's own publish,
the transport's poll and ack), wrapped by kombu (OperationalError) or Celery (the Reject of a
retry whose publish failed), and under a DLQ write. The error is kombu's real one, from a
publish on a channel kombu closed; the same AttributeError raised outside kombu is content."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery import Celery, Task
from celery.exceptions import Reject, Retry
from kombu import Connection, Producer
from kombu.exceptions import OperationalError

from service.config.redis_faults import RedisUnavailable, is_redis_unavailable
from service.dlq.access import dlq_reader, dlq_writer
from service.dlq.keys import PARKED_KEY
from service.dlq.reader import Filter
from service.dlq.safe_write import write_entry
from service.tasks.base import FleetTask
from service.transport.pending import PendingWrites


@pytest.fixture
def closed_channel_error(redis_url: str) -> AttributeError:
    """What kombu raises publishing on a channel it has closed (close_channel() set the
    channel's connection to None)."""
    with Connection(redis_url) as connection:
        channel = connection.channel()
        producer = Producer(channel, routing_key="closed-channel-test")
        channel.close()
        with pytest.raises(AttributeError) as caught:
            producer.publish({"n": 1})
    assert str(caught.value) == "'NoneType' object has no attribute 'client'"
    return caught.value


def test_every_shape_of_a_closed_kombu_channel_is_unavailable(
    closed_channel_error: AttributeError,
) -> None:
    # raw: a task's own publish, the transport's poll, ack and requeue
    assert is_redis_unavailable(closed_channel_error)
    # wrapped by kombu
    try:
        raise OperationalError(str(closed_channel_error)) from closed_channel_error
    except OperationalError as wrapped:
        assert is_redis_unavailable(wrapped)
    # wrapped by Celery when a retry's publish fails
    assert is_redis_unavailable(Reject(closed_channel_error, requeue=False))


def test_the_same_attribute_error_outside_kombu_is_content() -> None:
    # A task's own None: its fault, dead-lettered, never retried as a Redis outage
    nothing: Any = None
    with pytest.raises(AttributeError) as caught:
        nothing.client  # noqa: B018
    assert str(caught.value) == "'NoneType' object has no attribute 'client'"
    assert not is_redis_unavailable(caught.value)
    assert not is_redis_unavailable(Reject(caught.value, requeue=False))


def test_an_ack_meeting_a_closed_channel_stays_kept(closed_channel_error: AttributeError) -> None:
    # Given an ack and a requeue Redis refused, kept by the transport
    kept = PendingWrites()
    kept.keep("ack", "tag-1", closed_channel_error)
    kept.keep("requeue", "tag-2", closed_channel_error)

    def write(operation: str, tag: str) -> None:
        raise closed_channel_error

    # When they are retried on a channel kombu closed, then they stay kept (the next poll
    # writes them), instead of being given up to the sweep as the message's own fault
    assert kept.flush(write, max_age=60) == 0
    assert len(kept) == 2


def _task(body: Any) -> Any:
    app = Celery("closed-channel", set_as_current=False)
    task = app.task(base=FleetTask, name="tests.closed_channel.task", shared=False)(body)
    task.push_request(
        id="closed-1",
        retries=0,
        args=[],
        kwargs={},
        delivery_info={"exchange": "default", "routing_key": "default"},
    )
    return task


def test_a_retry_published_on_a_closed_channel_is_requeued(
    closed_channel_error: AttributeError, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Celery's retry failing to publish on a closed channel (it rejects, no requeue)
    def publish_fails(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise Reject(closed_channel_error, requeue=False)

    def body() -> None:
        pass

    monkeypatch.setattr(Task, "retry", publish_fails)
    task = _task(body)
    # When the task retries, then the message is requeued, not dropped
    with pytest.raises(Reject) as rejected:
        task.retry(countdown=1)
    assert rejected.value.requeue is True


def test_a_task_whose_own_publish_meets_a_closed_channel_is_retried(
    closed_channel_error: AttributeError, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a task whose body publishes on a closed channel
    def body() -> None:
        raise closed_channel_error

    task = _task(body)
    retried: list[BaseException] = []

    def retry(*args: Any, exc: BaseException, **kwargs: Any) -> Any:
        retried.append(exc)
        raise Retry(exc=exc)

    def dead_letter(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("dead-lettered a broker state")

    monkeypatch.setattr(task, "retry", retry)
    monkeypatch.setattr(task, "_dead_letter", dead_letter)
    # When it runs, then it is retried later (Redis, not the task), never dead-lettered
    with pytest.raises(Retry):
        task()
    assert retried == [closed_channel_error]


def _entry(entry_id: str) -> dict[str, Any]:
    return {
        "id": entry_id,
        "task_id": entry_id,
        "task_name": "service.tasks.diagnostics.fail",
        "queue": "default",
        "reason": "non_retryable_error",
        "last_failure_at": 1_700_000_000,
        "first_failure_at": 1_700_000_000,
        "retries": 0,
        "args": [],
        "kwargs": {},
    }


def test_a_dlq_write_meeting_a_closed_channel_waits_instead_of_degrading(
    closed_channel_error: AttributeError,
    redis_client: redis.Redis,
    celery_app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a DLQ write that meets the closed channel
    writer = dlq_writer()

    def add(*args: Any) -> bool:
        raise closed_channel_error

    monkeypatch.setattr(writer, "add", add)
    # Then the caller backs off and keeps the message: no minimal entry, nothing parked
    with pytest.raises(RedisUnavailable):
        write_entry(writer, _entry("closed-2"), {"headers": {"task": "x"}})  # type: ignore[arg-type]
    assert dlq_reader().count(Filter()) == 0
    assert redis_client.hlen(PARKED_KEY) == 0
