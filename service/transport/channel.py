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
import math
import time
from queue import Empty
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from service.catalog.naming import (
    QUARANTINE_KEY,
    consumers_key,
    held_key,
    priority_list_key,
    unacked_key,
    wake_key,
)
from service.transport.envelope import MalformedEnvelope, parse_envelope
from service.transport.message import SafeMessage
from service.transport.ownership import new_consumer_id, process_heartbeat
from service.transport.poll import Poller, warn_wrong_type
from service.transport.publish import WAKE_TOKEN, Publisher
from service.transport.qos import FleetQoS
from service.transport.quarantine import drain_due, drain_quarantine_safely
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

__all__ = ["QUARANTINE_KEY", "MalformedEnvelope", "Transport", "parse_envelope", "register"]


# kombu's Redis channel, for its private helpers the kombu stubs omit (reached through it,
# or through `self.kombu`, typed Any).
_RedisChannel: Any = kombu_redis.Channel


class Channel(kombu_redis.Channel):
    """kombu's Redis channel with its consuming (`poller`) and publishing (`publisher`)
    parts held as objects; ownership (consumer id, held tags, heartbeat) stays here."""

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
    _quarantine_drained = False  # once per process, shared by every channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kombu drops a blocking connection whose reply is later than this plus the health
        # check interval; our wait is longer than its 1 s BRPOP.
        current: Any = getattr(self, "brpop_timeout", None)
        self.brpop_timeout = math.ceil(max(current or 0, self.fleet_idle_timeout))
        self._fleet_heartbeat = process_heartbeat()
        self.consumer_id = new_consumer_id()
        self._fleet_scripts: dict[str, Any] = {}
        self._fleet_consumed: set[str] = set()
        # Delivery tag -> the queue it was popped from (its records live under that queue).
        self._fleet_owned: dict[str, str] = {}
        self.poller = Poller(self)
        self.publisher = Publisher(self)

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

    @property
    def kombu(self) -> Any:
        """This channel, typed for kombu's private helpers (the stubs omit them)."""
        return self

    def own(self, delivery_tag: str, queue: str) -> None:
        self._fleet_owned[delivery_tag] = queue

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

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.global_keyprefix:
            raise RuntimeError("celery-fleet's transport does not support global_keyprefix")
        queues = self.kombu._queue_cycle.consume(len(self.active_queues))
        if not queues or self.poller.refill_later():
            return
        # Acks and requeues a full or absent Redis refused: written first, so they go
        # through within a poll of Redis accepting writes again.
        self.kombu.qos.flush_pending()
        if not Channel._quarantine_drained or drain_due():
            Channel._quarantine_drained = True
            with self.conn_or_acquire() as client:
                drain_quarantine_safely(client)
        args = self.poller.next_command(queues, self.fleet_idle_timeout)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        self.client.connection.send_command(*args)

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        tag = super().basic_consume(queue, *args, **kwargs)
        if queue not in self.kombu._fanout_queues:
            # Beat for the queue before the first pop, from the process' heartbeat thread.
            self._fleet_consumed.add(queue)
            client = self.Client(connection_pool=self.pool)
            script = self.fleet_script("heartbeat")
            self._fleet_heartbeat.add(queue, self.consumer_id, self, client, script)
        # A wait covers the queues consumed when it began (at start: only mingle's reply
        # queue). Ring one of them, so the next cycle waits on the new queue too.
        poller = self.poller
        if self._in_poll and poller.pending == "wait" and poller.waited:
            with self.conn_or_acquire() as client:
                client.lpush(wake_key(poller.waited[0]), WAKE_TOKEN)
        return tag

    def _basic_cancel(self, consumer_tag: Any) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        result = _RedisChannel._basic_cancel(self, consumer_tag)
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
        if self._in_poll and self.poller.pending == "wait":
            self._in_poll = None
            self.poller.pending = None
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
        return self.poller.read(**options)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            while True:
                keys, args = self.poller.args([queue])
                reply = self.fleet_script("pop")(keys=keys, args=args, client=client)
                self.kombu._maybe_update_queues_expire(client, queue)
                list_key, item, tag, *wrong_type = reply
                if not list_key:
                    self.warn_wrong_type(wrong_type)
                    raise Empty()
                intake = self.poller.intake
                payload = intake.accept(bytes_to_str(list_key), item, bytes_to_str(tag), queue)
                if payload is not None:
                    # basic_get appends to the QoS after we return: skip its second write.
                    intake.tracked_tag = payload["properties"]["delivery_tag"]
                    return payload

    def tracked_by_pop(self, delivery_tag: str) -> bool:
        """Whether the message being delivered already has its unacked record."""
        return self.poller.intake.tracked_by_pop(delivery_tag)

    # --- publishing (service.transport.publish) --------------------------------------------

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        self.publisher.put(queue, message, super()._put, **kwargs)

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        self.publisher.restore_message(payload, exchange, routing_key, pipe, leftmost)

    def check_routable(self, exchange: str, routing_key: str) -> None:
        self.publisher.check_routable(exchange, routing_key)

    def _size(self, queue: str) -> int:
        return self.poller.size(queue)

    def warn_wrong_type(self, keys: list[Any]) -> None:
        warn_wrong_type(keys)


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make `redis://` and `rediss://` URLs use this transport in this process."""
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
