"""Reads backlog, oldest message age and DLQ size for every catalog queue in ONE pipelined
round trip per Redis server (two only when the DLQ lives on its own Redis); on Redis Cluster
one script per hash slot, all in one pipeline (one round trip per node). Counts every kombu
priority sub-list (celery-exporter's #272: base list only)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.crc import key_slot

from service.catalog.naming import SENT_AT_HEADER, consumers_key, priority_list_keys
from service.catalog.queues import CATALOG, QueueCatalog
from service.config.redis_client import (
    RedisClient,
    broker_redis,
    dlq_redis,
    is_cluster,
    pipeline_eval,
)
from service.config.settings import FleetSettings, get_settings
from service.dlq.keys import index_key as dlq_index_key


@dataclass(frozen=True)
class QueueStats:
    length: int
    oldest_age_seconds: float  # 0 when empty or when no waiting message carries a send time
    dlq_length: int
    # Consumers of the queue whose heartbeat is within the dead-owner timeout (service.transport).
    live_consumers: int = 0


logger = logging.getLogger(__name__)

# For each list key: its length (-1: the key holds another type) and the send time found in
# the oldest message's headers. Only the number leaves Redis, not the message: the exporter
# once pulled every oldest message whole (5 MB messages: 1.8 s per scrape). kombu writes
# headers as `"fleet_sent_at": 1700000000.1`; a base64 body cannot contain that text.
_LENGTHS_AND_SENT_AT = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.pcall('LLEN', key)
  if type(n) ~= 'number' then
    out[#out + 1] = -1
    out[#out + 1] = false
  else
    out[#out + 1] = n
    local sent = false
    if n > 0 then
      local oldest = redis.call('LINDEX', key, -1)
      -- A plain find (memchr speed) first; a pattern match only on the few bytes after it.
      local at = string.find(oldest, '"' .. ARGV[1] .. '":', 1, true)
      if at then
        sent = string.match(oldest, '^%s*(-?[%d%.eE+]+)', at + #ARGV[1] + 3) or false
      end
    end
    out[#out + 1] = sent
  end
end
return out
"""
# Consumers whose heartbeat (Redis TIME, written by service.transport) is fresh, by Redis'
# clock too: the exporter's own clock never decides.
_LIVE_CONSUMERS = """
local t = redis.call('TIME')
return redis.call('ZCOUNT', KEYS[1], t[1] + t[2] / 1000000 - tonumber(ARGV[1]), '+inf')
"""

_warned_keys: set[str] = set()


def _sent_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _count(reply: Any, key: str) -> int:
    """A length reply; a key of the wrong type counts as empty (and is logged once), so one
    bad key never blanks every queue's gauges."""
    if isinstance(reply, int) and reply >= 0:
        return reply
    if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
        raise reply
    if key not in _warned_keys:
        _warned_keys.add(key)
        logger.warning("key %r is not of the type a queue uses; counted as empty", key)
    return 0


def slot_groups(client: RedisClient, keys: list[str]) -> list[list[str]]:
    """`keys` split so each group can be one script: all of them on one Redis, one group
    per hash slot on a cluster (a script touches one slot)."""
    if not is_cluster(client):
        return [keys]
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())


def read_queue_stats(
    client: RedisClient | None = None,
    settings: FleetSettings | None = None,
    catalog: QueueCatalog = CATALOG,
    now: float | None = None,
    dlq_client: RedisClient | None = None,
) -> dict[str, QueueStats]:
    """Raises redis.RedisError when a server does not answer; never returns partial stats.

    `dlq_client` defaults to `client` unless FLEET_DLQ_URL points the DLQ elsewhere."""
    settings = settings or get_settings()
    client = client or broker_redis()
    if dlq_client is None:
        dlq_client = client if settings.dlq_url is None else dlq_redis()
    # On a cluster the lists carry the queue's hash tag (the transport's names there).
    cluster = is_cluster(client)
    layout = {
        spec.name: priority_list_keys(
            spec.name, settings.priority_steps, settings.priority_sep, cluster
        )
        for spec in catalog
    }
    groups = slot_groups(client, [key for keys in layout.values() for key in keys])
    with client.pipeline(transaction=False) as pipe:
        # kombu LPUSHes and pops from the right: the oldest message is at the tail.
        for group in groups:
            pipeline_eval(pipe, _LENGTHS_AND_SENT_AT, group, [SENT_AT_HEADER])
        for name in layout:
            pipeline_eval(
                pipe, _LIVE_CONSUMERS, [consumers_key(name)], [settings.dead_owner_timeout_seconds]
            )
        shared = dlq_client is client
        if shared:
            for name in layout:
                pipe.zcard(dlq_index_key(name))
        answers = pipe.execute(raise_on_error=False)
    heads = answers[: len(groups)]
    consumer_replies = answers[len(groups) : len(groups) + len(layout)]
    rest = answers[len(groups) + len(layout) :]
    by_key: dict[str, tuple[Any, Any]] = {}
    for group, head in zip(groups, heads, strict=True):
        if isinstance(head, Exception):
            raise head
        for index, key in enumerate(group):
            by_key[key] = (head[2 * index], head[2 * index + 1])
    consumers = [
        _count(n, consumers_key(name)) for n, name in zip(consumer_replies, layout, strict=True)
    ]
    if shared:
        dlq_lengths = rest
    else:
        with dlq_client.pipeline(transaction=False) as dlq_pipe:
            for name in layout:
                dlq_pipe.zcard(dlq_index_key(name))
            dlq_lengths = dlq_pipe.execute(raise_on_error=False)
    dlq_lengths = [
        _count(n, dlq_index_key(name)) for n, name in zip(dlq_lengths, layout, strict=True)
    ]
    now = time.time() if now is None else now
    stats: dict[str, QueueStats] = {}
    for (name, keys), dlq_length in zip(layout.items(), dlq_lengths, strict=True):
        length, oldest = 0, None
        for key in keys:
            count_reply, sent_reply = by_key[key]
            length += _count(count_reply, key)
            sent = _sent_at(sent_reply)
            if sent is not None and (oldest is None or sent < oldest):
                oldest = sent
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        stats[name] = QueueStats(
            length=length,
            oldest_age_seconds=age,
            dlq_length=int(dlq_length),
            live_consumers=max(consumers[len(stats)], 0),
        )
    return stats
