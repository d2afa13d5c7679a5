"""Reading the dead-letter store: lookups, filtered pages newest first, counts and stats.
Reads need no script: each is one command or one pipelined round trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import (
    GLOBAL_INDEX,
    STATS_KEY,
    entries_key,
    envelopes_key,
    index_key,
    reason_index_key,
    split_member,
    task_index_key,
)
from service.errors import DLQError


@dataclass(frozen=True)
class Filter:
    queue: str | None = None
    task_name: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, entry: DLQEntry) -> bool:
        return (
            (self.queue is None or entry["queue"] == self.queue)
            and (self.task_name is None or entry["task_name"] == self.task_name)
            and (self.reason is None or entry["reason"] == self.reason)
        )

    def queue_only(self) -> bool:
        """Only the queue (and times) narrow it: its per-queue index holds exactly that."""
        return self.queue is not None and self.task_name is None and self.reason is None

    def index_key(self) -> str:
        # The narrowest index the filter allows; the rest is checked per entry.
        if self.task_name is not None:
            return task_index_key(self.task_name)
        if self.reason is not None:
            return reason_index_key(self.reason)
        if self.queue is not None:
            return index_key(self.queue)  # members are bare ids; see iter_entries
        return GLOBAL_INDEX


def load_entry(raw: Any) -> DLQEntry:
    return cast(DLQEntry, json.loads(raw))


class DLQReader:
    """Read-only view of the dead-letter store on one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

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


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
