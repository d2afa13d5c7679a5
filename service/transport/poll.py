"""The consuming part of the transport's Channel (service.transport.channel holds one per
channel): what each poll sends (the pop script, or a wait on the wake lists), reading its
reply, and delivering what one pop returned.

A pop takes as many messages as the QoS has free prefetch slots, and while the worker still
holds enough to keep every process busy it waits for `fleet_refill_batch` free slots: one
script call then serves several tasks when the queue is full. Everything one pop returns is
recorded as held by this consumer in the same atomic step (a worker that dies with them
prefetched loses none: the dead-owner sweep restores them)."""

from __future__ import annotations

import time
import uuid
from queue import Empty
from typing import Any

from kombu.utils.encoding import bytes_to_str
from redis.exceptions import NoScriptError

from service.catalog.naming import (
    consumers_key,
    held_key,
    quarantine_key,
    unacked_key,
    wake_key,
)
from service.config.redis_faults import REFUSALS, is_redis_unavailable
from service.transport.intake import Intake
from service.transport.records import warn_throttled
from service.transport.scripts import POP_AND_TRACK

# Most messages one poll pops (with unlimited prefetch; else the free prefetch slots).
MAX_BATCH = 16
# After Redis refused the poll (full, a script error): wait this long before the next one.
BACKOFF_SECONDS = 1.0


class Poller:
    """`channel` is the transport's Channel (kombu's Redis channel: client, qos, queue cycle,
    priority steps)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.intake = Intake(channel)
        self.idle = False
        self.backoff = False
        # What the request in flight is: "pop", "wait" (a BLPOP on wake lists), or None.
        self.pending: str | None = None
        self.waited: list[str] = []
        self.list_queue: dict[str, str] = {}
        # Messages the last pop asked for, and whether it got them all (a busy queue).
        self.asked = 1
        self.filled = False

    def args(self, queues: list[str], count: int = 1) -> tuple[list[str], list[Any]]:
        """The pop script's keys and args for `queues`, popping at most `count` messages."""
        channel = self.channel
        # kombu's BRPOP key order: every queue's most urgent list first.
        lists: list[str] = []
        index: list[int] = []
        for pri in channel.priority_steps:
            for number, queue in enumerate(queues, 1):
                lists.append(channel._q_for_pri(queue, pri))
                index.append(number)
        self.list_queue.update(zip(lists, (queues[i - 1] for i in index), strict=True))
        keys = list(lists)
        for queue in queues:
            keys += [unacked_key(queue), held_key(queue, channel.consumer_id)]
            keys += [consumers_key(queue), wake_key(queue)]
        keys += [quarantine_key(queue) for queue in queues]
        return keys, [len(lists), len(queues), channel.consumer_id, time.time(), *index, count]

    def refill_later(self) -> bool:
        """Whether to wait for more free prefetch slots before popping: while the worker
        still holds enough to keep every process busy, one pop per `fleet_refill_batch`
        freed slots instead of one per task (the event loop asks again at its next tick, at
        the latest when a task ends). Only while the queue is busy (the last pop got all it
        asked for): messages trickling in are taken as they come, up to the prefetch."""
        if self.idle or self.backoff or not self.filled:
            return False
        free = self.channel.qos.can_consume_max_estimate()
        return free is not None and 0 < free < self.channel.fleet_refill_batch

    def pop_command(self, queues: list[str]) -> list[Any]:
        free = self.channel.qos.can_consume_max_estimate()
        count = MAX_BATCH if free is None else max(1, min(free, MAX_BATCH))
        self.asked = count
        keys, args = self.args(queues, count)
        return ["EVALSHA", self.channel.fleet_script("pop").sha, len(keys), *keys, *args]

    def next_command(self, queues: list[str], idle_timeout: float) -> list[Any]:
        """The request of the next poll: a backoff wait, a wait on the queues' wake lists
        (idle), or the pop."""
        self.waited = queues
        if self.backoff:
            self.pending = "wait"
            return ["BLPOP", f"fleet:backoff:{uuid.uuid4().hex}", BACKOFF_SECONDS]
        if self.idle:
            self.pending = "wait"
            return ["BLPOP", *(wake_key(q) for q in queues), idle_timeout]
        self.pending = "pop"
        return self.pop_command(queues)

    def read(self, **options: Any) -> bool:
        """Read the reply of the request in flight (kombu's _brpop_read) and deliver."""
        channel = self.channel
        client = channel.client
        pending = self.pending
        try:
            try:
                reply = client.parse_response(client.connection, "EVAL", **options)
                if pending == "wait":
                    # A token or the idle timeout: poll now, on this connection, without
                    # another trip through the event loop (pickup latency).
                    self.idle = False
                    client.connection.send_command(*self.pop_command(self.waited))
                    reply = client.parse_response(client.connection, "EVALSHA")
            except channel.connection_errors:
                client.connection.disconnect()
                raise
            except NoScriptError:
                # Redis restarted or flushed its scripts: load the pop again, poll again.
                try:
                    with channel.conn_or_acquire() as other:
                        other.script_load(POP_AND_TRACK)
                except channel.ResponseError:
                    self.backoff = True
                raise Empty() from None
            except channel.ResponseError as exc:
                # A full Redis, a wrong-type wake list...: back off, never die or spin.
                channel.fleet_poll_refused(exc)
                if is_redis_unavailable(exc):
                    REFUSALS.labels("poll").inc()
                warn_throttled("poll", "Redis refused the poll (%s); retrying in %ss", exc, 1)
                self.backoff = True
                raise Empty() from None
            self.backoff = False
            self.filled = bool(reply[0]) and len(reply) - 1 >= 2 * self.asked
            if not reply[0]:
                channel.warn_wrong_type(reply[3:])
                channel.fleet_poll_empty(self.waited)
                raise Empty()
            self.idle = False
            self.deliver_batch(bytes_to_str(reply[0]), reply[1:])
            return True
        finally:
            channel._in_poll = None
            self.pending = None
            flush = getattr(channel, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def deliver_batch(self, list_key: str, popped: list[Any]) -> None:
        """Deliver what one pop returned ((item, tag) pairs from `list_key`); when a delivery
        raises, the messages not delivered yet go back to the head of their queue."""
        dest = self.list_queue[list_key]
        pairs = list(zip(popped[0::2], (bytes_to_str(t) for t in popped[1::2]), strict=True))
        self.channel._queue_cycle.rotate(dest)
        for done, (item, tag) in enumerate(pairs):
            try:
                payload = self.intake.accept(list_key, item, tag, dest)
                if payload is not None:
                    self.intake.deliver(payload, dest)
            except BaseException:
                rest = [t for _, t in pairs[done + 1 :] if t and self.channel.owned_queue(t)]
                if rest:
                    self.intake.give_back(dest, rest)
                raise

    def get(self, queue: str) -> dict[str, Any]:
        """kombu's `_get` (basic_get): pop one message of `queue`, recorded as held, or
        raise Empty."""
        channel = self.channel
        with channel.conn_or_acquire() as client:
            while True:
                keys, args = self.args([queue])
                reply = channel.fleet_script("pop")(keys=keys, args=args, client=client)
                channel.kombu._maybe_update_queues_expire(client, queue)
                list_key, item, tag, *wrong_type = reply
                if not list_key:
                    warn_wrong_type(wrong_type)
                    raise Empty()
                intake = self.intake
                payload = intake.accept(bytes_to_str(list_key), item, bytes_to_str(tag), queue)
                if payload is not None:
                    # basic_get appends to the QoS after we return: skip its second write.
                    intake.tracked_tag = payload["properties"]["delivery_tag"]
                    return payload

    def size(self, queue: str) -> int:
        """kombu's `_size`, except that a wrong-type key counts as empty instead of raising
        (queue declaration at worker start calls it: it would stop the worker)."""
        channel = self.channel
        lists = [channel._q_for_pri(queue, pri) for pri in channel.priority_steps]
        with channel.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            for key in lists:
                pipe.llen(key)
            sizes = pipe.execute(raise_on_error=False)
        warn_wrong_type([k for k, n in zip(lists, sizes, strict=True) if not isinstance(n, int)])
        return sum(n for n in sizes if isinstance(n, int))


def warn_wrong_type(keys: list[Any]) -> None:
    for key in keys:
        name = bytes_to_str(key)
        warn_throttled(
            f"type-{name}",
            "Redis key %r holds a value of the wrong type for a queue list; it is skipped "
            "(delete or rename it)",
            name,
        )
