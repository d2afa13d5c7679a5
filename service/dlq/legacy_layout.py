"""The DLQ layout before the hash tags, and its migration to service.dlq.keys.

Before: per queue `fleet:dlq:Q:entries|envelopes|index`, and across queues
`fleet:dlq:index`, `fleet:dlq:by-reason:R`, `fleet:dlq:by-task:T` (members "Q|id"),
`fleet:dlq:stats` ("Q|R" -> count), `fleet:dlq:replaying` (id -> claim). That layout only
ever ran on one Redis (its scripts span slots), so only a single Redis can hold it.

Existing entries are MIGRATED, not read in place: each entry moves in one script (it is in
the old layout or the new one, never both, never neither), so a crash mid-way loses
nothing and the next run finishes. It runs where the DLQ is opened: the first DLQ write of
a worker process, every `fleet dlq` command, and beat's queue snapshot every minute, which
also picks up entries that workers of the previous release write during a rolling upgrade.
When nothing is left it costs one EXISTS."""

from __future__ import annotations

import json
import logging
from typing import Any

from service.config.redis_client import RedisClient, is_cluster, pipeline_eval
from service.dlq.keys import DLQ_PREFIX, claims_key, entry_keys
from service.dlq.store_scripts import FILE_ENTRY
from service.task_names import task_label

logger = logging.getLogger(__name__)

LEGACY_GLOBAL_INDEX = f"{DLQ_PREFIX}:index"
LEGACY_STATS_KEY = f"{DLQ_PREFIX}:stats"
LEGACY_CLAIMS_KEY = f"{DLQ_PREFIX}:replaying"
_BATCH = 500


def legacy_entry_keys(queue: str, reason: str, task_name: str) -> list[str]:
    """The old layout's keys of one entry, in the order of the old scripts."""
    return [
        f"{DLQ_PREFIX}:{queue}:entries",
        f"{DLQ_PREFIX}:{queue}:envelopes",
        f"{DLQ_PREFIX}:{queue}:index",
        LEGACY_GLOBAL_INDEX,
        f"{DLQ_PREFIX}:by-reason:{reason}",
        f"{DLQ_PREFIX}:by-task:{task_label(task_name)}",
        LEGACY_STATS_KEY,
    ]


# KEYS 1-7: the old keys (legacy_entry_keys); 8-13: the new ones (keys.entry_keys), filed as
# the store's ADD files them (store_scripts.FILE_ENTRY).
# ARGV: id, old member "Q|id", old stats field "Q|R", reason
# An id already in the new layout (re-captured after the upgrade) keeps the new entry.
_MOVE = (
    FILE_ENTRY
    + """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  redis.call('ZREM', KEYS[4], ARGV[2])
  return 0
end
local score = redis.call('ZSCORE', KEYS[4], ARGV[2]) or redis.call('ZSCORE', KEYS[3], ARGV[1]) or 0
if redis.call('HEXISTS', KEYS[8], ARGV[1]) == 0 then
  file_entry(8, ARGV[1], score, entry, redis.call('HGET', KEYS[2], ARGV[1]), ARGV[4], true)
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
if redis.call('HINCRBY', KEYS[7], ARGV[3], -1) <= 0 then
  redis.call('HDEL', KEYS[7], ARGV[3])
end
return 1
"""
)


def migrate_legacy_layout(client: RedisClient, priority_sep: str) -> int:
    """Move every entry (and in-flight replay claim) of the old layout to the new one;
    returns how many entries moved. A no-op on Redis Cluster and when nothing is left."""
    if is_cluster(client) or not client.exists(LEGACY_GLOBAL_INDEX, LEGACY_CLAIMS_KEY):
        return 0
    _move_claims(client, priority_sep)
    moved = 0
    while True:
        members = [_text(m) for m in client.zrange(LEGACY_GLOBAL_INDEX, 0, _BATCH - 1)]
        if not members:
            break
        moved += _move_batch(client, members)
    if moved:
        logger.warning("moved %d dead-letter entries to the hash-tagged layout", moved)
    return moved


def _move_batch(client: RedisClient, members: list[str]) -> int:
    pairs = [member.partition("|")[::2] for member in members]
    with client.pipeline(transaction=False) as pipe:
        for queue, entry_id in pairs:
            pipe.hget(f"{DLQ_PREFIX}:{queue}:entries", entry_id)
        raws = pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for member, (queue, entry_id), raw in zip(members, pairs, raws, strict=True):
            reason, task_name = _reason_and_task(raw)
            keys = [
                *legacy_entry_keys(queue, reason, task_name),
                *entry_keys(queue, reason, task_name),
            ]
            args = [entry_id, member, f"{queue}|{reason}", reason]
            pipeline_eval(pipe, _MOVE, keys, args)
        return sum(int(done) for done in pipe.execute())


def _reason_and_task(raw: Any) -> tuple[str, str]:
    """The index names an entry's keys are derived from; an entry that is gone or
    unreadable still has its index member removed by the script (nothing to move)."""
    try:
        entry = json.loads(raw) if raw is not None else {}
    except ValueError:
        entry = {}
    return str(entry.get("reason", "")), str(entry.get("task_name", ""))


def _move_claims(client: RedisClient, priority_sep: str) -> None:
    """An old claim only names its target list; the new layout keeps claims per queue, so
    it goes to its destination queue's claims hash (any queue's would do: the next
    `fleet dlq replay` pushes every claim it finds)."""
    claims = client.hgetall(LEGACY_CLAIMS_KEY)
    for entry_id, raw in claims.items():
        claim = json.loads(raw)
        queue = str(claim["target"]).split(priority_sep, 1)[0]
        claim["queue"] = queue
        with client.pipeline(transaction=True) as pipe:
            pipe.hset(claims_key(queue), entry_id, json.dumps(claim))
            pipe.hdel(LEGACY_CLAIMS_KEY, entry_id)
            pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
