"""The dead-letter store in Redis. Every mutation is one Lua script: atomic, O(log n).

Layout per source queue Q (names from service.catalog.naming):
  fleet:dlq:Q:entries    hash  id -> entry JSON (redacted: what operators see)
  fleet:dlq:Q:envelopes  hash  id -> the kombu message to push back on replay
  fleet:dlq:Q:index      zset  id by last failure (ms)
and across queues, members "Q|id":
  fleet:dlq:index, fleet:dlq:by-reason:R, fleet:dlq:by-task:T   zsets for filters
  fleet:dlq:stats        hash  "Q|R" -> count

The envelope is the message as it sat in the broker list (same bytes and secrets as before it
failed); entries shown to humans have sensitive kwargs masked."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from service.catalog.naming import (
    DLQ_PREFIX,
    dlq_entries_key,
    dlq_index_key,
    priority_list_key,
    wake_key,
)
from service.errors import DLQError
from service.exporter.queue_stats import SENT_AT_HEADER
from service.task_names import bounded

GLOBAL_INDEX = f"{DLQ_PREFIX}:index"
STATS_KEY = f"{DLQ_PREFIX}:stats"
CLAIMS_KEY = f"{DLQ_PREFIX}:replaying"


def envelopes_key(queue: str) -> str:
    return f"{DLQ_PREFIX}:{queue}:envelopes"


def reason_index_key(reason: str) -> str:
    return f"{DLQ_PREFIX}:by-reason:{reason}"


def task_index_key(task_name: str) -> str:
    # Unregistered names share one index: their number is up to whoever sends messages.
    return f"{DLQ_PREFIX}:by-task:{bounded(task_name)}"


def member(queue: str, entry_id: str) -> str:
    return f"{queue}|{entry_id}"


def split_member(value: str) -> tuple[str, str]:
    queue, _, entry_id = value.partition("|")
    return queue, entry_id


# KEYS: entries, envelopes, queue index, global index, reason index, task index, stats
# ARGV: id, member, score, entry json, envelope json, stats field
_ADD = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local entry = cjson.decode(ARGV[4])
if existing then
  local old = cjson.decode(existing)
  entry['first_failure_at'] = old['first_failure_at']
  entry['occurrences'] = (old['occurrences'] or 1) + 1
  if old['reason'] ~= entry['reason'] or old['task_name'] ~= entry['task_name'] then
    return redis.error_reply('entry ' .. ARGV[1] .. ' exists with other reason/task')
  end
else
  redis.call('HINCRBY', KEYS[7], ARGV[6], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[2])
return existing and 0 or 1
"""

# Same KEYS as _ADD plus KEYS[8]: the destination list (mode push) or the claims hash
# (mode claim). ARGV: id, member, stats field, message, mode ('push' | 'claim' | 'purge')
_REMOVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[5] == 'push' then
  redis.call('LPUSH', KEYS[8], ARGV[4])
elseif ARGV[5] == 'claim' then
  redis.call('HSET', KEYS[8], ARGV[1], ARGV[4])
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


@dataclass(frozen=True)
class Filter:
    queue: str | None = None
    task_name: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        return (
            (self.queue is None or entry["queue"] == self.queue)
            and (self.task_name is None or entry["task_name"] == self.task_name)
            and (self.reason is None or entry["reason"] == self.reason)
        )

    def index_key(self) -> str:
        # The narrowest index the filter allows; the rest is checked per entry.
        if self.task_name is not None:
            return task_index_key(self.task_name)
        if self.reason is not None:
            return reason_index_key(self.reason)
        if self.queue is not None:
            return GLOBAL_INDEX  # members carry the queue; see DLQStore.iter_ids
        return GLOBAL_INDEX


class DLQStore:
    """Atomic dead-letter operations on one Redis (the broker's, so replay is one script)."""

    def __init__(
        self,
        client: redis.Redis,
        priority_steps: tuple[int, ...] = (0, 3, 6, 9),
        priority_sep: str = "\x06\x16",
        broker: redis.Redis | None = None,
    ) -> None:
        """`broker`: the broker's Redis when the DLQ lives elsewhere. Then replay cannot be
        one script; it claims the entry (atomic), pushes it, then drops the claim, and a
        claim left by a crash is pushed by the next replay (at least once, never lost)."""
        self.client = client
        self.broker = broker
        self.priority_steps = priority_steps
        self.priority_sep = priority_sep
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)

    # -- writes -------------------------------------------------------------------------
    def add(self, entry: dict[str, Any], envelope: dict[str, Any]) -> bool:
        """Store one entry; True if new, False if it updated an existing one (redelivery)."""
        return bool(self._add(**self._add_call(entry, envelope)))

    def add_many(self, items: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
        """Store many entries in one pipelined round trip (imports, fixtures, benchmarks)."""
        with self.client.pipeline(transaction=False) as pipe:
            for entry, envelope in items:
                self._add(**self._add_call(entry, envelope), client=pipe)
            return sum(int(created) for created in pipe.execute())

    def _add_call(self, entry: dict[str, Any], envelope: dict[str, Any]) -> dict[str, Any]:
        queue, entry_id = entry["queue"], entry["id"]
        return {
            "keys": self._keys(queue, entry["reason"], entry["task_name"]),
            "args": [
                entry_id,
                member(queue, entry_id),
                int(entry["last_failure_at"] * 1000),
                json.dumps(entry, sort_keys=True),
                json.dumps(envelope),
                member(queue, entry["reason"]),
            ],
        }

    def replay(
        self,
        queue: str,
        entry_id: str,
        to_queue: str | None = None,
        to_exchange: str | None = None,
        to_routing_key: str | None = None,
    ) -> bool:
        """Push the entry back to its queue (or `to_queue`) and delete it, in one script.
        False when the id is not (or no longer) in the DLQ: replaying twice enqueues once."""
        entry = self.get(queue, entry_id)
        stored = self.client.hget(envelopes_key(queue), entry_id)
        if entry is None or stored is None:
            return False
        envelope = json.loads(stored)
        destination = to_queue or queue
        if "raw" in envelope:
            # Bytes that never were a kombu message go back verbatim (after a consumer fix).
            message = base64.b64decode(envelope["raw"])
            target = destination
        else:
            properties = envelope.setdefault("properties", {})
            if to_queue is not None and to_exchange is not None:
                properties["delivery_info"] = {
                    "exchange": to_exchange,
                    "routing_key": to_routing_key,
                }
            headers = envelope.get("headers")
            if isinstance(headers, dict):
                headers[SENT_AT_HEADER] = time.time()  # queue wait restarts at replay
            priority = properties.get("priority")
            priority = priority if isinstance(priority, int) else 0
            step = max((s for s in self.priority_steps if s <= priority), default=0)
            target = priority_list_key(destination, step, self.priority_sep)
            message = json.dumps(envelope).encode()
        base_keys = self._keys(queue, entry["reason"], entry["task_name"])
        common: list[str | bytes] = [
            entry_id,
            member(queue, entry_id),
            member(queue, entry["reason"]),
        ]
        if self.broker is None:
            pushed = bool(self._remove(keys=[*base_keys, target], args=[*common, message, "push"]))
            if pushed:
                self._wake(self.client, destination)
            return pushed
        claim = json.dumps({"target": target, "message": base64.b64encode(message).decode()})
        if not self._remove(keys=[*base_keys, CLAIMS_KEY], args=[*common, claim, "claim"]):
            return False
        self._push_claim(entry_id, claim)
        return True

    def _push_claim(self, entry_id: str, claim: str) -> None:
        assert self.broker is not None
        parsed = json.loads(claim)
        self.broker.lpush(parsed["target"], base64.b64decode(parsed["message"]))
        self._wake(self.broker, str(parsed["target"]).split(self.priority_sep, 1)[0])
        self.client.hdel(CLAIMS_KEY, entry_id)

    @staticmethod
    def _wake(client: redis.Redis, queue: str) -> None:
        # A hint for idle workers blocked on the queue's wake list (service.dlq.transport);
        # without it they find the message at their next idle timeout.
        client.lpush(wake_key(queue), "1")

    def resume_claims(self) -> int:
        """Push replays a crash interrupted between claim and push (separate DLQ Redis)."""
        if self.broker is None:
            return 0
        claims = self.client.hgetall(CLAIMS_KEY)
        for entry_id, claim in claims.items():
            self._push_claim(_text(entry_id), _text(claim))
        return len(claims)

    def purge(self, queue: str, entry_id: str) -> bool:
        entry = self.get(queue, entry_id)
        if entry is None:
            return False
        return bool(
            self._remove(
                keys=self._keys(queue, entry["reason"], entry["task_name"]),
                args=[
                    entry_id,
                    member(queue, entry_id),
                    member(queue, entry["reason"]),
                    "",
                    "purge",
                ],
            )
        )

    # -- reads --------------------------------------------------------------------------
    def get(self, queue: str, entry_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(dlq_entries_key(queue), entry_id)
        return None if raw is None else dict(json.loads(raw))

    def find(self, entry_id: str, queues: tuple[str, ...]) -> dict[str, Any]:
        """Look an id up across queues (ids are unique per queue; first match wins)."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hget(dlq_entries_key(queue), entry_id)
            found = pipe.execute()
        for raw in found:
            if raw is not None:
                return dict(json.loads(raw))
        raise DLQError(f"no dead-letter entry with id {entry_id!r}")

    def envelope(self, queue: str, entry_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(envelopes_key(queue), entry_id)
        return None if raw is None else dict(json.loads(raw))

    def page(self, flt: Filter, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Entries matching `flt`, newest first. Cost: O(log n + offset + scanned)."""
        return list(self.iter_entries(flt, offset=offset, limit=limit))

    def iter_entries(
        self, flt: Filter, offset: int = 0, limit: int | None = None, batch: int = 500
    ) -> Iterator[dict[str, Any]]:
        per_queue = flt.queue is not None and _queue_only(flt)
        key = dlq_index_key(str(flt.queue)) if per_queue else flt.index_key()
        high = "+inf" if flt.until_ms is None else str(flt.until_ms)
        low = "-inf" if flt.since_ms is None else str(flt.since_ms)
        skipped = yielded = 0
        cursor = 0
        if limit is not None:
            batch = min(batch, offset + limit)  # a first page of 50 reads 50, not 500
        while limit is None or yielded < limit:
            members = self.client.zrevrangebyscore(key, high, low, start=cursor, num=batch)
            if not members:
                return
            cursor += len(members)
            pairs = [
                (str(flt.queue), _text(m)) if per_queue else split_member(_text(m)) for m in members
            ]
            with self.client.pipeline(transaction=False) as pipe:
                for queue, entry_id in pairs:
                    pipe.hget(dlq_entries_key(str(queue)), entry_id)
                raws = pipe.execute()
            for raw in raws:
                if raw is None:
                    continue  # removed between the two reads
                entry = json.loads(raw)
                if not flt.matches(entry):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                yield entry
                yielded += 1
                if limit is not None and yielded >= limit:
                    return

    def count(self, flt: Filter) -> int:
        if (
            flt.task_name is None
            and flt.reason is None
            and flt.since_ms is None
            and flt.until_ms is None
        ):
            if flt.queue is None:
                return int(self.client.zcard(GLOBAL_INDEX))
            return int(self.client.zcard(dlq_index_key(flt.queue)))
        return sum(1 for _ in self.iter_entries(flt))

    def lengths(self, queues: tuple[str, ...]) -> dict[str, int]:
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(dlq_index_key(queue))
            counts = pipe.execute()
        return {queue: int(n) for queue, n in zip(queues, counts, strict=True)}

    def stats(self) -> dict[tuple[str, str], int]:
        raw = self.client.hgetall(STATS_KEY)
        result: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            queue, reason = split_member(_text(field))
            result[(queue, reason)] = int(value)
        return result

    def _keys(self, queue: str, reason: str, task_name: str) -> list[str]:
        return [
            dlq_entries_key(queue),
            envelopes_key(queue),
            dlq_index_key(queue),
            GLOBAL_INDEX,
            reason_index_key(reason),
            task_index_key(task_name),
            STATS_KEY,
        ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _queue_only(flt: Filter) -> bool:
    return flt.queue is not None and flt.task_name is None and flt.reason is None
