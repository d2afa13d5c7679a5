"""The dead-letter store. Writes (add, replay, purge) are each one Lua script (atomic,
O(log n); scripts in service.dlq.store_scripts, key layout in service.dlq.keys); reads need
no script: each is one command or one pipelined round trip.

The envelope is the message as it sat in the broker list (same bytes and secrets as before it
failed); entries shown to humans have sensitive kwargs masked."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any, cast

import redis

from service.catalog.naming import (
    KOMBU_DEFAULT_PRIORITY_STEPS,
    KOMBU_DEFAULT_SEP,
    SENT_AT_HEADER,
    priority_list_key,
    wake_key,
)
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import (
    CLAIMS_KEY,
    GLOBAL_INDEX,
    STATS_KEY,
    entries_key,
    entry_keys,
    envelopes_key,
    index_key,
    member,
    split_member,
)
from service.dlq.query import Filter
from service.dlq.store_scripts import ADD, REMOVE
from service.errors import DLQError

__all__ = ["DLQStore", "Filter"]


class DLQStore:
    """Atomic dead-letter operations on one Redis (the broker's, so replay is one script)."""

    def __init__(
        self,
        client: redis.Redis,
        priority_steps: tuple[int, ...] = KOMBU_DEFAULT_PRIORITY_STEPS,
        priority_sep: str = KOMBU_DEFAULT_SEP,
        broker: redis.Redis | None = None,
    ) -> None:
        """`broker`: the broker's Redis when the DLQ lives elsewhere. Then replay cannot be
        one script; it claims the entry (atomic), pushes it, then drops the claim, and a
        claim left by a crash is pushed by the next replay (at least once, never lost)."""
        self.client = client
        self.broker = broker
        self.priority_steps = priority_steps
        self.priority_sep = priority_sep
        self._add = client.register_script(ADD)
        self._remove = client.register_script(REMOVE)

    # Reads: one command or one pipelined round trip each.

    def get(self, queue: str, entry_id: str) -> DLQEntry | None:
        raw = self.client.hget(entries_key(queue), entry_id)
        return None if raw is None else load_entry(raw)

    def find(self, entry_id: str, queues: tuple[str, ...]) -> DLQEntry:
        """Look an id up across queues (ids are unique per queue; first match wins)."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hget(entries_key(queue), entry_id)
            found = pipe.execute()
        for raw in found:
            if raw is not None:
                return load_entry(raw)
        raise DLQError(f"no dead-letter entry with id {entry_id!r}")

    def envelope(self, queue: str, entry_id: str) -> Envelope | None:
        raw = self.client.hget(envelopes_key(queue), entry_id)
        return None if raw is None else dict(json.loads(raw))

    def page(self, flt: Filter, offset: int = 0, limit: int = 50) -> list[DLQEntry]:
        """Entries matching `flt`, newest first. Cost: O(log n + offset + scanned)."""
        return list(self.iter_entries(flt, offset=offset, limit=limit))

    def iter_entries(
        self, flt: Filter, offset: int = 0, limit: int | None = None, batch: int = 500
    ) -> Iterator[DLQEntry]:
        per_queue = flt.queue_only()
        key = flt.index_key()
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
                (str(flt.queue), as_text(m)) if per_queue else split_member(as_text(m))
                for m in members
            ]
            with self.client.pipeline(transaction=False) as pipe:
                for queue, entry_id in pairs:
                    pipe.hget(entries_key(str(queue)), entry_id)
                raws = pipe.execute()
            for raw in raws:
                if raw is None:
                    continue  # removed between the two reads
                entry = load_entry(raw)
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
            return int(self.client.zcard(index_key(flt.queue)))
        return sum(1 for _ in self.iter_entries(flt))

    def lengths(self, queues: tuple[str, ...]) -> dict[str, int]:
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(index_key(queue))
            counts = pipe.execute()
        return {queue: int(n) for queue, n in zip(queues, counts, strict=True)}

    def stats(self) -> dict[tuple[str, str], int]:
        raw = self.client.hgetall(STATS_KEY)
        result: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            queue, reason = split_member(as_text(field))
            result[(queue, reason)] = int(value)
        return result

    # Writes: one Lua script each.

    def add(self, entry: DLQEntry, envelope: Envelope) -> bool:
        """Store one entry; True if new, False if it updated an existing one (redelivery)."""
        return bool(self._add(**self._add_call(entry, envelope)))

    def add_many(self, items: list[tuple[DLQEntry, Envelope]]) -> int:
        """Store many entries in one pipelined round trip (imports, fixtures, benchmarks)."""
        with self.client.pipeline(transaction=False) as pipe:
            for entry, envelope in items:
                self._add(**self._add_call(entry, envelope), client=pipe)
            return sum(int(created) for created in pipe.execute())

    def _add_call(self, entry: DLQEntry, envelope: Envelope) -> dict[str, Any]:
        queue, entry_id = entry["queue"], entry["id"]
        return {
            "keys": entry_keys(queue, entry["reason"], entry["task_name"]),
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
        envelope = self.envelope(queue, entry_id)
        if entry is None or envelope is None:
            return False
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
        if self.broker is None:
            pushed = self._remove_entry(queue, entry_id, entry, "push", target, message)
            if pushed:
                self._wake(self.client, destination)
            return pushed
        claim = json.dumps({"target": target, "message": base64.b64encode(message).decode()})
        if not self._remove_entry(queue, entry_id, entry, "claim", CLAIMS_KEY, claim):
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
        # A hint for idle workers blocked on the queue's wake list (service.transport);
        # without it they find the message at their next idle timeout.
        client.lpush(wake_key(queue), "1")

    def resume_claims(self) -> int:
        """Push replays a crash interrupted between claim and push (separate DLQ Redis)."""
        if self.broker is None:
            return 0
        claims = self.client.hgetall(CLAIMS_KEY)
        for entry_id, claim in claims.items():
            self._push_claim(as_text(entry_id), as_text(claim))
        return len(claims)

    def purge(self, queue: str, entry_id: str) -> bool:
        entry = self.get(queue, entry_id)
        if entry is None:
            return False
        return self._remove_entry(queue, entry_id, entry, "purge")

    def _remove_entry(
        self,
        queue: str,
        entry_id: str,
        entry: DLQEntry,
        mode: str,
        destination: str | None = None,
        message: str | bytes = "",
    ) -> bool:
        """One REMOVE script: drop the entry everywhere and, in the same step, push `message`
        to the list `destination` (mode push) or record it as a claim (mode claim)."""
        keys = entry_keys(queue, entry["reason"], entry["task_name"])
        if destination is not None:
            keys.append(destination)
        args = [entry_id, member(queue, entry_id), member(queue, entry["reason"]), message, mode]
        return bool(self._remove(keys=keys, args=args))


def load_entry(raw: Any) -> DLQEntry:
    return cast(DLQEntry, json.loads(raw))


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
