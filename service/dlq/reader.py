"""Reading the dead-letter store: lookups, filtered pages newest first, counts and stats.
Reads need no script: each is one command or one pipelined round trip (on Redis Cluster,
one per node). Every index is per source queue (service.dlq.keys); a read over several
queues merges their indexes newest first."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

from service.catalog.queues import CATALOG
from service.config.redis_client import RedisClient
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import (
    QUEUES_KEY,
    entries_key,
    envelopes_key,
    index_key,
    reason_index_key,
    stats_key,
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

    def index_key(self, queue: str) -> str:
        # The narrowest index of `queue` the filter allows; the rest is checked per entry.
        if self.task_name is not None:
            return task_index_key(queue, self.task_name)
        if self.reason is not None:
            return reason_index_key(queue, self.reason)
        return index_key(queue)

    def unfiltered(self) -> bool:
        """Nothing but (at most) the queue narrows it: an index's size is the count."""
        return (
            self.task_name is None
            and self.reason is None
            and self.since_ms is None
            and self.until_ms is None
        )


def load_entry(raw: Any) -> DLQEntry:
    return cast(DLQEntry, json.loads(raw))


class DLQReader:
    """Read-only view of the dead-letter store on one Redis or one Redis Cluster."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def queues(self) -> tuple[str, ...]:
        """The catalog's queues, then any other queue that has held an entry."""
        known = {as_text(q) for q in cast(Iterable[Any], self.client.smembers(QUEUES_KEY))}
        return CATALOG.names + tuple(sorted(known - set(CATALOG.names)))

    def get(self, queue: str, entry_id: str) -> DLQEntry | None:
        raw = self.client.hget(entries_key(queue), entry_id)
        return None if raw is None else load_entry(raw)

    def find(self, entry_id: str, queues: tuple[str, ...] | None = None) -> DLQEntry:
        """Look an id up across queues (ids are unique per queue; first match wins)."""
        queues = queues or self.queues()
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

    def _newest_first(
        self, flt: Filter, queue: str, batch: int
    ) -> Iterator[tuple[float, str, str]]:
        """(score, queue, id) of `queue`'s entries the filter's index holds, newest first."""
        key = flt.index_key(queue)
        high = "+inf" if flt.until_ms is None else str(flt.until_ms)
        low = "-inf" if flt.since_ms is None else str(flt.since_ms)
        cursor = 0
        while True:
            members = cast(
                list[tuple[Any, Any]],
                self.client.zrevrangebyscore(
                    key, high, low, start=cursor, num=batch, withscores=True
                ),
            )
            if not members:
                return
            cursor += len(members)
            for member, score in members:
                yield float(score), queue, as_text(member)

    def iter_entries(
        self, flt: Filter, offset: int = 0, limit: int | None = None, batch: int = 500
    ) -> Iterator[DLQEntry]:
        if limit is not None:
            batch = min(batch, offset + limit)  # a first page of 50 reads 50, not 500
        queues = (flt.queue,) if flt.queue is not None else self.queues()
        streams = [self._newest_first(flt, queue, batch) for queue in queues]
        merged = heapq.merge(*streams, key=lambda item: -item[0])
        skipped = yielded = 0
        while limit is None or yielded < limit:
            pairs = [(queue, entry_id) for _, queue, entry_id in islice(merged, batch)]
            if not pairs:
                return
            with self.client.pipeline(transaction=False) as pipe:
                for queue, entry_id in pairs:
                    pipe.hget(entries_key(queue), entry_id)
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
        if flt.unfiltered():
            queues = (flt.queue,) if flt.queue is not None else self.queues()
            return sum(self.lengths(queues).values())
        return sum(1 for _ in self.iter_entries(flt))

    def lengths(self, queues: tuple[str, ...]) -> dict[str, int]:
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(index_key(queue))
            counts = pipe.execute()
        return {queue: int(n) for queue, n in zip(queues, counts, strict=True)}

    def stats(self) -> dict[tuple[str, str], int]:
        queues = self.queues()
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hgetall(stats_key(queue))
            replies = pipe.execute()
        result: dict[tuple[str, str], int] = {}
        for queue, counts in zip(queues, replies, strict=True):
            for reason, value in counts.items():
                result[(queue, as_text(reason))] = int(value)
        return result


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
