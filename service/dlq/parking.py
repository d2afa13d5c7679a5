"""The last resort of the dead-letter queue: a message whose entry Redis refuses for its
content even in minimal form (an id taken by entries of other tasks, a foreign value at the
queue's entry keys) is parked in one hash, `fleet:dlq:parked`, instead of being requeued and
run again forever. Parked messages are never executed again by the worker; `fleet dlq
parked` lists them, `celery_dlq_parked_total` counts them and `CeleryDeadLetterParked`
alerts. An operator fixes the key, then re-sends or deletes them by hand."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import Counter

from service.config.redis_client import RedisClient
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import PARKED_KEY

logger = logging.getLogger(__name__)

PARKED = Counter(
    "celery_dlq_parked",
    "Messages parked because the dead-letter queue refused every form of their entry.",
    ("queue",),
)


def initialise_parked(queues: list[str]) -> None:
    """Create each queue's series at 0 (worker start): the first parking is then an
    increase the alert sees, not a series born at 1."""
    for queue in queues:
        PARKED.labels(queue)


@dataclass(frozen=True)
class ParkedMessage:
    field: str
    queue: str
    entry_id: str
    task_name: str
    reason: str
    error: str
    parked_at: float
    envelope: Envelope


def park(client: RedisClient, entry: DLQEntry, envelope: Envelope, error: str) -> str:
    """Park the message; returns its field. Redis errors propagate (the caller classifies
    them: unavailable means retry later, anything else means the message is requeued)."""
    now = time.time()
    field = f"{entry['queue']}|{entry['id']}|{int(now * 1000)}"
    record = {
        "queue": entry["queue"],
        "id": entry["id"],
        "task_name": entry["task_name"],
        "reason": entry["reason"],
        "error": error,
        "parked_at": now,
        "envelope": envelope,
    }
    client.hset(PARKED_KEY, field, json.dumps(record, default=repr))
    PARKED.labels(entry["queue"]).inc()
    logger.error(
        "dead-letter entry %s refused in every form (%s): message parked in %s, not run again",
        entry["id"],
        error,
        PARKED_KEY,
        extra={"task_name": entry["task_name"], "reason": entry["reason"]},
    )
    return field


def parked_messages(client: RedisClient, limit: int = 1000) -> list[ParkedMessage]:
    """The parked messages, oldest first (at most `limit`)."""
    found: list[ParkedMessage] = []
    for field, raw in client.hscan_iter(PARKED_KEY, count=500):
        try:
            record: dict[str, Any] = json.loads(raw)
        except ValueError:
            record = {}
        found.append(
            ParkedMessage(
                field=field.decode() if isinstance(field, bytes) else str(field),
                queue=str(record.get("queue", "?")),
                entry_id=str(record.get("id", "?")),
                task_name=str(record.get("task_name", "?")),
                reason=str(record.get("reason", "?")),
                error=str(record.get("error", "?")),
                parked_at=float(record.get("parked_at") or 0),
                envelope=record.get("envelope") or {},
            )
        )
        if len(found) >= limit:
            break
    return sorted(found, key=lambda p: p.parked_at)


def parked_count(client: RedisClient) -> int:
    try:
        return int(client.hlen(PARKED_KEY))
    except redis.ResponseError:  # a foreign value under the key: nothing of ours is there
        return 0
