"""Writing the dead-letter store: add, replay, purge, each one Lua script (atomic, O(log n);
scripts in service.dlq.store_scripts, key layout in service.dlq.keys). Reads are inherited
from service.dlq.store_reads.

The envelope is the message as it sat in the broker list (same bytes and secrets as before it
failed); entries shown to humans have sensitive kwargs masked."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any

import redis

from service.catalog.naming import (
    KOMBU_DEFAULT_PRIORITY_STEPS,
    KOMBU_DEFAULT_SEP,
    priority_list_key,
    wake_key,
)
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import CLAIMS_KEY, entry_keys, member
from service.dlq.store_reads import DLQReader, Filter, as_text
from service.dlq.store_scripts import ADD, REMOVE
from service.exporter.queue_stats import SENT_AT_HEADER

__all__ = ["DLQStore", "Filter"]


class DLQStore(DLQReader):
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
        super().__init__(client)
        self.broker = broker
        self.priority_steps = priority_steps
        self.priority_sep = priority_sep
        self._add = client.register_script(ADD)
        self._remove = client.register_script(REMOVE)

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
        # without it they find the message at their next idle timeout. So its failure (a
        # foreign value under the key) never fails a replay that is done.
        with contextlib.suppress(redis.ResponseError):
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
