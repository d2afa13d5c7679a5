"""Writing the dead-letter store: add, replay, purge, each one Lua script (atomic, O(log n);
scripts in service.dlq.store_scripts, key layout in service.dlq.keys). The writer holds a
reader (service.dlq.reader) for what a write must look up first: the entry a replay pushes,
the queues whose interrupted replays it resumes.

The envelope is the message as it sat in the broker list (same bytes and secrets as before it
failed); entries shown to humans have sensitive kwargs masked."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any

import redis
from redis.crc import key_slot

from service.catalog.naming import (
    KOMBU_DEFAULT_PRIORITY_STEPS,
    KOMBU_DEFAULT_SEP,
    SENT_AT_HEADER,
    priority_list_key,
    wake_key,
)
from service.config.redis_client import RedisClient, is_cluster, pipeline_eval
from service.dlq.entry import DLQEntry, Envelope
from service.dlq.keys import QUEUES_KEY, claims_key, entries_key, entry_keys
from service.dlq.reader import DLQReader, as_text
from service.dlq.store_scripts import ADD, REMOVE


class DLQWriter:
    """Atomic dead-letter writes on one Redis or Redis Cluster (the broker's, so replay is
    one script whenever the destination list is in the entry's slot)."""

    def __init__(
        self,
        client: RedisClient,
        priority_steps: tuple[int, ...] = KOMBU_DEFAULT_PRIORITY_STEPS,
        priority_sep: str = KOMBU_DEFAULT_SEP,
        broker: RedisClient | None = None,
    ) -> None:
        """`broker`: the broker's Redis when the DLQ lives elsewhere. Then replay cannot be
        one script; it claims the entry (atomic), pushes it, then drops the claim, and a
        claim left by a crash is pushed by the next replay (at least once, never lost).
        The same happens on a cluster when the destination list is in another slot."""
        self.client = client
        self.reader = DLQReader(client)
        self.broker = broker
        self.priority_steps = priority_steps
        self.priority_sep = priority_sep
        self._add = client.register_script(ADD)
        self._remove = client.register_script(REMOVE)

    def add(self, entry: DLQEntry, envelope: Envelope) -> bool:
        """Store one entry; True if new, False if it updated an existing one (redelivery)."""
        # The queue registry first (its own slot on a cluster): an entry is never in a
        # queue that reads would not visit.
        self.client.sadd(QUEUES_KEY, entry["queue"])
        return bool(self._add(**self._add_call(entry, envelope)))

    def add_many(self, items: list[tuple[DLQEntry, Envelope]]) -> int:
        """Store many entries in one pipelined round trip per node (imports, fixtures,
        benchmarks)."""
        queues = sorted({entry["queue"] for entry, _ in items})
        if queues:
            self.client.sadd(QUEUES_KEY, *queues)
        with self.client.pipeline(transaction=False) as pipe:
            for entry, envelope in items:
                call = self._add_call(entry, envelope)
                pipeline_eval(pipe, ADD, call["keys"], call["args"])
            return sum(int(created) for created in pipe.execute())

    @staticmethod
    def _add_call(entry: DLQEntry, envelope: Envelope) -> dict[str, Any]:
        return {
            "keys": entry_keys(entry["queue"], entry["reason"], entry["task_name"]),
            "args": [
                entry["id"],
                int(entry["last_failure_at"] * 1000),
                json.dumps(entry, sort_keys=True),
                json.dumps(envelope),
                entry["reason"],
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
        entry = self.reader.get(queue, entry_id)
        envelope = self.reader.envelope(queue, entry_id)
        if entry is None or envelope is None:
            return False
        destination = to_queue or queue
        if "raw" in envelope:
            # Bytes that never were a kombu message go back verbatim (after a consumer fix).
            message = base64.b64decode(envelope["raw"])
            target = priority_list_key(destination, 0, cluster=is_cluster(self._push_client))
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
            # The broker's list name: tagged on a cluster (the transport's names there).
            cluster = is_cluster(self._push_client)
            target = priority_list_key(destination, step, self.priority_sep, cluster)
            message = json.dumps(envelope).encode()
        if self._one_script(queue, target):
            pushed = self._remove_entry(queue, entry_id, entry, "push", target, message)
            if pushed:
                self._wake(self.client, destination)
            return pushed
        claim = json.dumps(
            {
                "target": target,
                "queue": destination,
                "message": base64.b64encode(message).decode(),
            }
        )
        if not self._remove_entry(queue, entry_id, entry, "claim", claims_key(queue), claim):
            return False
        self._push_claim(queue, entry_id, claim)
        return True

    def _one_script(self, queue: str, target: str) -> bool:
        """Whether removing the entry and pushing to `target` can be one script: same
        Redis, and on a cluster the same slot (a script touches one slot)."""
        if self.broker is not None:
            return False
        if not is_cluster(self.client):
            return True
        return key_slot(entries_key(queue).encode()) == key_slot(target.encode())

    @property
    def _push_client(self) -> RedisClient:
        return self.broker if self.broker is not None else self.client

    def _push_claim(self, queue: str, entry_id: str, claim: str) -> None:
        parsed = json.loads(claim)
        destination = parsed.get("queue") or str(parsed["target"]).split(self.priority_sep, 1)[0]
        self._push_client.lpush(parsed["target"], base64.b64decode(parsed["message"]))
        self._wake(self._push_client, destination)
        self.client.hdel(claims_key(queue), entry_id)

    @staticmethod
    def _wake(client: RedisClient, queue: str) -> None:
        # A hint for idle workers blocked on the queue's wake list (service.transport);
        # without it they find the message at their next idle timeout. So its failure (a
        # foreign value under the key) never fails a replay that is done.
        with contextlib.suppress(redis.ResponseError):
            client.lpush(wake_key(queue), "1")

    def resume_claims(self) -> int:
        """Push replays a crash interrupted between claim and push (DLQ on its own Redis,
        or a cluster replay whose destination list is in another slot)."""
        queues = self.reader.queues()
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hgetall(claims_key(queue))
            replies = pipe.execute()
        resumed = 0
        for queue, claims in zip(queues, replies, strict=True):
            for entry_id, claim in claims.items():
                self._push_claim(queue, as_text(entry_id), as_text(claim))
                resumed += 1
        return resumed

    def purge(self, queue: str, entry_id: str) -> bool:
        """Delete the entry for good; False when it is not (or no longer) in the DLQ."""
        entry = self.reader.get(queue, entry_id)
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
        args = [entry_id, entry["reason"], message, mode]
        return bool(self._remove(keys=keys, args=args))
