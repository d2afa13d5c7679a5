"""kombu's Redis transport, made lossless and cheap to leave idle.

Stock kombu pops with BRPOP and writes its `unacked` record in a second step: a worker killed
in between, or a Redis restart that persists the pop but drops the reply, loses the message
(fault tests R1/R2 caught both). Here one Lua script pops AND records, atomically, and
kombu's own second write is skipped.

Lua cannot block, so an idle worker waits with BLPOP on its queues' wake lists
(`fleet:{<queue>}:wake`): every message this transport publishes or restores also pushes a
token there in the same round trip. A token is only a hint (losing one loses no message), so
blocking on tokens is safe where blocking on messages is not. The poll that finds the queues
empty drops stale tokens. Messages from producers that do not ring (stock kombu) are found
by the poll after each idle timeout (`IDLE_TIMEOUT_SECONDS`).

Bytes in a queue that are not a kombu message go to the DLQ (stock kombu loses them and tears
down the consumer), held in a quarantine hash by the same script until the DLQ has them. A
wrong-type key under a queue's name is skipped with a warning; a Redis that refuses writes
(full, noeviction) makes the worker back off instead of dying.
Registered for `redis://` and `rediss://` by `register()`, so URL handling stays kombu's."""

from __future__ import annotations

import logging
import time
import uuid
from queue import Empty
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps
from redis.exceptions import NoScriptError

from service.catalog.naming import (
    QUARANTINE_KEY,
    consumers_key,
    held_key,
    priority_list_key,
    quarantine_field,
    unacked_key,
    wake_key,
)
from service.config.redis_faults import REFUSALS, is_redis_unavailable
from service.transport.envelope import MalformedEnvelope, parse_envelope
from service.transport.message import SafeMessage
from service.transport.ownership import new_consumer_id, process_heartbeat
from service.transport.ownership_sweep import restore_held
from service.transport.publish import WAKE_TOKEN, RingingPublisher
from service.transport.qos import FleetQoS
from service.transport.quarantine import dead_letter_raw, drain_due, drain_quarantine_safely
from service.transport.records import warn_throttled
from service.transport.scripts import (
    HEARTBEAT,
    POP_AND_TRACK,
    RESTORE_HELD,
    TRACK_QUARANTINED,
)

logger = logging.getLogger(__name__)

# An idle worker polls once per this many seconds even without a wake token (messages from
# producers that do not ring). Also its Redis cost when idle: one BLPOP and one poll.
# Transport option `fleet_idle_timeout` (FLEET_IDLE_POLL_SECONDS) overrides it.
IDLE_TIMEOUT_SECONDS = 30.0
# A consumer whose heartbeat is older than this is dead: its messages go back to their queue.
# Transport option `fleet_dead_owner_timeout` (FLEET_DEAD_OWNER_TIMEOUT_SECONDS).
DEAD_OWNER_TIMEOUT_SECONDS = 30.0
# Most messages one poll pops (with unlimited prefetch; else the free prefetch slots).
MAX_BATCH = 16
# After Redis refused the poll (full, a script error): wait this long before the next one.
BACKOFF_SECONDS = 1.0

__all__ = ["QUARANTINE_KEY", "MalformedEnvelope", "Transport", "parse_envelope", "register"]


# The kombu stubs omit the Redis channel's private helpers used below.
_RedisChannel: Any = kombu_redis.Channel


class Channel(RingingPublisher, _RedisChannel):  # type: ignore[misc]
    QoS = FleetQoS
    from_transport_options = (
        *_RedisChannel.from_transport_options,
        "fleet_idle_timeout",
        "fleet_dead_owner_timeout",
        "fleet_refill_batch",
    )
    fleet_idle_timeout = IDLE_TIMEOUT_SECONDS
    fleet_dead_owner_timeout = DEAD_OWNER_TIMEOUT_SECONDS
    fleet_refill_batch = 1
    # Messages whose body decoding cannot raise: bad bodies reach the DLQ (transport.message).
    Message = SafeMessage
    _fleet_idle = False
    _fleet_backoff = False
    _fleet_pending: str | None = None
    _fleet_tracked_tag: str | None = None
    _fleet_waited: list[str] = []  # noqa: RUF012 - replaced, never mutated
    _quarantine_drained = False  # once per process, shared by every channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kombu drops a blocking connection whose reply is later than this plus the health
        # check interval; our wait is longer than its 1 s BRPOP.
        current: Any = getattr(self, "brpop_timeout", None)
        self.brpop_timeout = max(current or 0, self.fleet_idle_timeout)
        self._fleet_heartbeat = process_heartbeat()
        self.consumer_id = new_consumer_id()
        self._fleet_scripts: dict[str, Any] = {}
        self._fleet_consumed: set[str] = set()
        # Delivery tag -> the queue it was popped from (its records live under that queue).
        self._fleet_owned: dict[str, str] = {}
        self._fleet_list_queue: dict[str, str] = {}

    # --- ownership ------------------------------------------------------------------------

    def fleet_script(self, name: str) -> Any:
        """One of the transport's Lua scripts, called by SHA (loaded again on NOSCRIPT)."""
        script = self._fleet_scripts.get(name)
        if script is None:
            source = {
                "pop": POP_AND_TRACK,
                "track_quarantined": TRACK_QUARANTINED,
                "heartbeat": HEARTBEAT,
                "restore_held": RESTORE_HELD,
            }[name]
            with self.conn_or_acquire() as client:
                script = self._fleet_scripts[name] = client.register_script(source)
        return script

    def owned_queue(self, delivery_tag: Any) -> str | None:
        """The queue a message this consumer holds was popped from (None: not ours)."""
        return self._fleet_owned.get(bytes_to_str(delivery_tag))

    def forget(self, delivery_tag: Any) -> None:
        self._fleet_owned.pop(bytes_to_str(delivery_tag), None)

    def swept_queues(self) -> list[str]:
        """The queues whose dead consumers this channel's sweep restores: those it consumes."""
        return sorted(self._fleet_consumed)

    def restore_list(self, message: dict[str, Any], queue: str) -> str:
        """Mark a message redelivered (as kombu's restore does) and name the list of its
        priority in `queue`."""
        headers = message.get("headers")
        if isinstance(headers, dict):
            headers["redelivered"] = True
        message["properties"].setdefault("delivery_info", {})["redelivered"] = True
        return str(self._q_for_pri(queue, self._get_message_priority(message, reverse=False)))

    def _q_for_pri(self, queue: str, pri: int) -> str:
        # Every list name goes through the one function (service.catalog.naming).
        return priority_list_key(queue, self.priority(pri), self.sep)

    # --- consuming -------------------------------------------------------------------------

    def _poll_args(self, queues: list[str], count: int = 1) -> tuple[list[str], list[Any]]:
        """The pop script's keys and args for `queues`, popping at most `count` messages."""
        # kombu's BRPOP key order: every queue's most urgent list first.
        lists: list[str] = []
        index: list[int] = []
        for pri in self.priority_steps:
            for number, queue in enumerate(queues, 1):
                lists.append(self._q_for_pri(queue, pri))
                index.append(number)
        self._fleet_list_queue.update(zip(lists, (queues[i - 1] for i in index), strict=True))
        keys = list(lists)
        for queue in queues:
            keys += [unacked_key(queue), held_key(queue, self.consumer_id)]
            keys += [consumers_key(queue), wake_key(queue)]
        keys.append(QUARANTINE_KEY)
        return keys, [len(lists), len(queues), self.consumer_id, time.time(), *index, count]

    def _refill_later(self) -> bool:
        """Whether to wait for more free prefetch slots before popping: while the worker
        still holds enough to keep every process busy, one pop per `fleet_refill_batch`
        freed slots instead of one per task (the event loop asks again at its next tick, at
        the latest when a task ends). An idle wait or a backoff is never put off."""
        if self._fleet_idle or self._fleet_backoff:
            return False
        free = self.qos.can_consume_max_estimate()
        return free is not None and 0 < free < self.fleet_refill_batch

    def _pop_command(self, queues: list[str]) -> list[Any]:
        # As many as the QoS has free prefetch slots: one script call then serves several
        # tasks when the queue is full (what it pops is recorded as held, like one message).
        free = self.qos.can_consume_max_estimate()
        count = MAX_BATCH if free is None else max(1, min(free, MAX_BATCH))
        keys, args = self._poll_args(queues, count)
        return ["EVALSHA", self.fleet_script("pop").sha, len(keys), *keys, *args]

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.global_keyprefix:
            raise RuntimeError("celery-fleet's transport does not support global_keyprefix")
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues or self._refill_later():
            return
        # Acks and requeues a full or absent Redis refused: written first, so they go
        # through within a poll of Redis accepting writes again.
        self.qos.flush_pending()
        if not Channel._quarantine_drained or drain_due():
            Channel._quarantine_drained = True
            with self.conn_or_acquire() as client:
                drain_quarantine_safely(client)
        self._fleet_waited = queues
        if self._fleet_backoff:
            args: list[Any] = ["BLPOP", f"fleet:backoff:{uuid.uuid4().hex}", BACKOFF_SECONDS]
            self._fleet_pending = "wait"
        elif self._fleet_idle:
            args = ["BLPOP", *(wake_key(q) for q in queues), self.fleet_idle_timeout]
            self._fleet_pending = "wait"
        else:
            args = self._pop_command(queues)
            self._fleet_pending = "pop"
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        self.client.connection.send_command(*args)

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        tag = super().basic_consume(queue, *args, **kwargs)
        if queue not in self._fanout_queues:
            # Beat for the queue before the first pop, from the process' heartbeat thread.
            self._fleet_consumed.add(queue)
            client = self.Client(connection_pool=self.pool)
            script = self.fleet_script("heartbeat")
            self._fleet_heartbeat.add(queue, self.consumer_id, self, client, script)
        # A wait covers the queues consumed when it began (at start: only mingle's reply
        # queue). Ring one of them, so the next cycle waits on the new queue too.
        if self._in_poll and self._fleet_pending == "wait" and self._fleet_waited:
            with self.conn_or_acquire() as client:
                client.lpush(wake_key(self._fleet_waited[0]), WAKE_TOKEN)
        return tag

    def _basic_cancel(self, consumer_tag: Any) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        result = super()._basic_cancel(consumer_tag)
        held = set(self._fleet_owned.values())
        active = set(self._active_queues) | held
        if queue in self._fleet_consumed and queue not in active:
            # No longer consumed (e.g. mingle's reply queue) and nothing of it held: stop
            # beating for it (an idle worker's Redis cost is mostly its beats).
            self._fleet_consumed.discard(queue)
            self._fleet_heartbeat.discard(queue, self.consumer_id)
            self._deregister([queue])
        return result

    def close(self) -> None:
        # kombu's close reads a pending reply: our idle wait would hold every warm shutdown
        # for up to fleet_idle_timeout. A wait only pops a wake token (no message): drop it.
        if self._in_poll and self._fleet_pending == "wait":
            self._in_poll = None
            self._fleet_pending = None
            self.client.connection.disconnect()
        if self._fleet_consumed and not self.closed:
            # Give back prefetched, not-started messages (QoS.restore_unacked; kombu's close
            # would do it later, without a connection left to deregister on).
            self.qos.restore_unacked_once()
            self._leave()
        super().close()

    def _leave(self) -> None:
        """Stop beating and forget this consumer in each queue where it holds nothing more
        (what it still holds comes back when its heartbeat is stale)."""
        self._fleet_heartbeat.remove(self.consumer_id)
        self._deregister(list(self._fleet_consumed))

    def _deregister(self, queues: list[str]) -> None:
        """Leave the consumers set of each queue where this consumer holds nothing."""
        try:
            with self.conn_or_acquire() as client:
                for queue in queues:
                    keys = [consumers_key(queue), held_key(queue, self.consumer_id)]
                    keys += [unacked_key(queue), wake_key(queue)]
                    self.fleet_script("restore_held")(
                        keys=keys, args=[self.consumer_id, "leaving", "right"], client=client
                    )
        except Exception as exc:  # unreachable Redis: the beats of the others clean up
            logger.warning("could not deregister consumer %s (%s)", self.consumer_id, exc)

    def _brpop_read(self, **options: Any) -> bool:
        pending = self._fleet_pending
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVAL", **options)
                if pending == "wait":
                    # A token or the idle timeout: poll now, on this connection, without
                    # another trip through the event loop (pickup latency).
                    self._fleet_idle = False
                    connection = self.client.connection
                    connection.send_command(*self._pop_command(self._fleet_waited))
                    reply = self.client.parse_response(connection, "EVALSHA")
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except NoScriptError:
                # Redis restarted or flushed its scripts: load the pop again, poll again.
                try:
                    with self.conn_or_acquire() as client:
                        client.script_load(POP_AND_TRACK)
                except self.ResponseError:
                    self._fleet_backoff = True
                raise Empty() from None
            except self.ResponseError as exc:
                # A full Redis, a wrong-type wake list...: back off, never die or spin.
                if is_redis_unavailable(exc):
                    REFUSALS.labels("poll").inc()
                warn_throttled("poll", "Redis refused the poll (%s); retrying in %ss", exc, 1)
                self._fleet_backoff = True
                raise Empty() from None
            self._fleet_backoff = False
            if not reply[0]:
                self._warn_wrong_type(reply[3:])
                self._fleet_idle = True
                raise Empty()
            self._fleet_idle = False
            self._deliver_batch(bytes_to_str(reply[0]), reply[1:])
            return True
        finally:
            self._in_poll = None
            self._fleet_pending = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            while True:
                keys, args = self._poll_args([queue])
                reply = self.fleet_script("pop")(keys=keys, args=args, client=client)
                self._maybe_update_queues_expire(client, queue)
                list_key, item, tag, *wrong_type = reply
                if not list_key:
                    self._warn_wrong_type(wrong_type)
                    raise Empty()
                payload = self._accept(bytes_to_str(list_key), item, bytes_to_str(tag), queue)
                if payload is not None:
                    # basic_get appends to the QoS after we return: skip its second write.
                    self._fleet_tracked_tag = payload["properties"]["delivery_tag"]
                    return payload

    def _accept(self, list_key: str, item: bytes, tag: str, queue: str) -> dict[str, Any] | None:
        """The parsed message to deliver, or None when it went to the DLQ (or stays in
        quarantine / unacked because the DLQ write failed: nothing is lost either way)."""
        if tag:
            self._fleet_owned[tag] = queue
        try:
            payload = parse_envelope(item)
            if tag and payload["properties"]["delivery_tag"] != tag:
                # The script's string search found a delivery tag that is not the message's
                # (a header of that name): never deliver a message under another's record.
                raise MalformedEnvelope("delivery_tag found outside the message properties")
        except MalformedEnvelope as exc:
            with self.conn_or_acquire() as client:
                if not tag:
                    dead_letter_raw(client, item, list_key, exc)
                elif dead_letter_raw(client, item, list_key, exc):
                    # cjson read it but Python cannot: the unacked record goes too.
                    self.qos._remove_from_indices(tag, client.pipeline()).execute()
                    self.forget(tag)
            return None
        if tag:
            return payload
        # Quarantined by cjson, readable by Python: track it before delivering.
        properties = payload["properties"]
        info = properties.get("delivery_info") or {}
        record = dumps([payload, info.get("exchange") or "", info.get("routing_key") or ""])
        tag = properties["delivery_tag"]
        keys = [QUARANTINE_KEY, unacked_key(queue), held_key(queue, self.consumer_id)]
        keys.append(consumers_key(queue))
        with self.conn_or_acquire() as client:
            tracked = self.fleet_script("track_quarantined")(
                keys=keys, args=[quarantine_field(list_key, item), tag, record, self.consumer_id],
                client=client,
            )  # fmt: skip
        if tracked:
            self._fleet_owned[tag] = queue
        return payload if tracked else None

    def _deliver_batch(self, list_key: str, popped: list[Any]) -> None:
        """Deliver what one pop returned ((item, tag) pairs from `list_key`); when a delivery
        raises, the messages not delivered yet go back to the head of their queue."""
        dest = self._fleet_list_queue[list_key]
        pairs = list(zip(popped[0::2], (bytes_to_str(t) for t in popped[1::2]), strict=True))
        self._queue_cycle.rotate(dest)
        for done, (item, tag) in enumerate(pairs):
            try:
                payload = self._accept(list_key, item, tag, dest)
                if payload is not None:
                    self._deliver_tracked(payload, dest)
            except BaseException:
                rest = [t for _, t in pairs[done + 1 :] if t and t in self._fleet_owned]
                if rest:
                    self._give_back(dest, rest)
                raise

    def _give_back(self, queue: str, tags: list[str]) -> None:
        """Return popped, undelivered messages to the head of `queue`, first one next."""
        try:
            with self.conn_or_acquire() as client:
                restore_held(self.qos, client, queue, self.consumer_id, tags[::-1], "owner")
        except Exception as exc:  # held by this consumer: back when it leaves or dies
            logger.warning("could not give back %d popped messages (%r)", len(tags), exc)
        for tag in tags:
            self.forget(tag)

    def _deliver_tracked(self, payload: dict[str, Any], dest: str) -> None:
        self._fleet_tracked_tag = payload["properties"]["delivery_tag"]
        try:
            self.connection._deliver(payload, dest)
        finally:
            self._fleet_tracked_tag = None

    def tracked_by_pop(self, delivery_tag: str) -> bool:
        """Whether the message being delivered already has its unacked record."""
        tracked = self._fleet_tracked_tag == delivery_tag
        if tracked:
            self._fleet_tracked_tag = None
        return tracked

    def _size(self, queue: str) -> int:
        # kombu's, except that a wrong-type key counts as empty instead of raising (queue
        # declaration at worker start calls this: it would stop the worker).
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps]
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            for key in lists:
                pipe.llen(key)
            sizes = pipe.execute(raise_on_error=False)
        wrong = [k for k, n in zip(lists, sizes, strict=True) if not isinstance(n, int)]
        self._warn_wrong_type(wrong)
        return sum(n for n in sizes if isinstance(n, int))

    def _warn_wrong_type(self, keys: list[Any]) -> None:
        for key in keys:
            name = bytes_to_str(key)
            warn_throttled(
                f"type-{name}",
                "Redis key %r holds a value of the wrong type for a queue list; it is "
                "skipped (delete or rename it)",
                name,
            )


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make `redis://` and `rediss://` URLs use this transport in this process."""
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
