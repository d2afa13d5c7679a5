"""Reads backlog, oldest message age and DLQ size for every catalog queue in ONE pipelined
round trip per Redis server (two only when the DLQ lives on its own Redis). Counts every kombu
priority sub-list (celery-exporter's #272: base list only)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from service.catalog.naming import dlq_index_key, priority_list_keys
from service.catalog.queues import CATALOG, QueueCatalog
from service.config.redis_client import broker_redis, dlq_redis
from service.config.settings import FleetSettings, get_settings

SENT_AT_HEADER = "fleet_sent_at"


@dataclass(frozen=True)
class QueueStats:
    length: int
    oldest_age_seconds: float  # 0 when empty or when no waiting message carries a send time
    dlq_length: int


def _sent_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        headers = json.loads(raw).get("headers") or {}
        value = headers.get(SENT_AT_HEADER)
        return float(value) if value is not None else None
    except (ValueError, AttributeError, TypeError):
        return None  # a malformed message; the worker dead-letters it when it gets there


def read_queue_stats(
    client: redis.Redis | None = None,
    settings: FleetSettings | None = None,
    catalog: QueueCatalog = CATALOG,
    now: float | None = None,
    dlq_client: redis.Redis | None = None,
) -> dict[str, QueueStats]:
    """Raises redis.RedisError when a server does not answer; never returns partial stats.

    `dlq_client` defaults to `client` unless FLEET_DLQ_URL points the DLQ elsewhere."""
    settings = settings or get_settings()
    client = client or broker_redis()
    if dlq_client is None:
        dlq_client = client if settings.dlq_url is None else dlq_redis()
    layout = {
        spec.name: priority_list_keys(spec.name, settings.priority_steps, settings.priority_sep)
        for spec in catalog
    }
    with client.pipeline(transaction=False) as pipe:
        for keys in layout.values():
            for key in keys:
                pipe.llen(key)
                pipe.lindex(key, -1)  # kombu LPUSHes and BRPOPs: the oldest is at the tail
        shared = dlq_client is client
        if shared:
            for name in layout:
                pipe.zcard(dlq_index_key(name))
        replies: list[Any] = pipe.execute()
    if shared:
        dlq_lengths = replies[-len(layout) :]
    else:
        with dlq_client.pipeline(transaction=False) as dlq_pipe:
            for name in layout:
                dlq_pipe.zcard(dlq_index_key(name))
            dlq_lengths = dlq_pipe.execute()
    now = time.time() if now is None else now
    stats: dict[str, QueueStats] = {}
    position = 0
    for (name, keys), dlq_length in zip(layout.items(), dlq_lengths, strict=True):
        length, oldest = 0, None
        for _ in keys:
            length += int(replies[position])
            sent = _sent_at(replies[position + 1])
            if sent is not None and (oldest is None or sent < oldest):
                oldest = sent
            position += 2
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        stats[name] = QueueStats(length=length, oldest_age_seconds=age, dlq_length=int(dlq_length))
    return stats
