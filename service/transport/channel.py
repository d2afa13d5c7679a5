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
Registered for `redis://` and `rediss://` by `register()`, so URL handling stays kombu's; on
Redis Cluster, service.transport.cluster_channel overrides the `fleet_poll_*` hooks."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

from service.catalog.naming import priority_list_key, wake_key
from service.config.redis_faults import refusal_as_connection_error
from service.transport.envelope import MalformedEnvelope, parse_envelope
from service.transport.message import SafeMessage
from service.transport.ownership import deregister, new_consumer_id, process_heartbeat
from service.transport.poll import Poller, warn_wrong_type
from service.transport.publish import WAKE_TOKEN, Publisher
from service.transport.qos import FleetQoS
from service.transport.quarantine import drain_due, drain_quarantine_safely
from service.transport.scripts import HEARTBEAT, POP_AND_TRACK, RESTORE_HELD, TRACK_QUARANTINED

logger = logging.getLogger(__name__)

# An idle worker polls once per this many seconds even without a wake token (messages from
# producers that do not ring). Also its Redis cost when idle: one BLPOP and one poll.
# Transport option `fleet_idle_timeout` (FLEET_IDLE_POLL_SECONDS) overrides it.
IDLE_TIMEOUT_SECONDS = 30.0
# A consumer whose heartbeat is older than this is dead: its messages go back to their queue.
# Transport option `fleet_dead_owner_timeout` (FLEET_DEAD_OWNER_TIMEOUT_SECONDS).
DEAD_OWNER_TIMEOUT_SECONDS = 30.0

__all__ = ["MalformedEnvelope", "Transport", "parse_envelope", "register"]


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
        "fleet_publish_wait_replicas",
        "fleet_publish_wait_timeout_ms",
        "fleet_refill_batch",
    )
    fleet_idle_timeout = IDLE_TIMEOUT_SECONDS
    fleet_dead_owner_timeout = DEAD_OWNER_TIMEOUT_SECONDS
    # FLEET_PUBLISH_WAIT_REPLICAS / _TIMEOUT_MS (service.transport.replicated): 0 = off.
    fleet_publish_wait_replicas = 0
    fleet_publish_wait_timeout_ms = 1000
    fleet_refill_batch = 1
    # Messages whose body decoding cannot raise: bad bodies reach the DLQ (transport.message).
    Message = SafeMessage
    _quarantine_drained = False  # once per process, shared by every channel
    # Redis Cluster hooks (service.transport.cluster_channel overrides them): list names
    # carry the queue's hash tag there, and kombu's global keys of earlier releases (the
    # legacy quarantine hash) never existed.
    fleet_cluster = False

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
        return priority_list_key(queue, self.priority(pri), self.sep, self.fleet_cluster)

    # --- consuming -------------------------------------------------------------------------

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.global_keyprefix:
            raise RuntimeError("celery-fleet's transport does not support global_keyprefix")
        if self.poller.refill_later():
            return
        queues = self.fleet_poll_queues()
        if not queues:
            return
        # Acks and requeues a full or absent Redis refused: written first, so they go
        # through within a poll of Redis accepting writes again.
        self.kombu.qos.flush_pending()
        if not Channel._quarantine_drained or drain_due():
            Channel._quarantine_drained = True
            with self.conn_or_acquire() as client:
                drain_quarantine_safely(client, list(self.active_queues), not self.fleet_cluster)
        args = self.poller.next_command(queues, self.fleet_wait_timeout())
        connection = self.fleet_poll_connection(queues)
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()
        connection.send_command(*args)

    @property
    def supports_batch_publish(self) -> bool:
        # A batched publish skips FLEET_PUBLISH_WAIT_REPLICAS' WAIT: none while it is on.
        kombu_says = _RedisChannel.supports_batch_publish.fget(self)
        return not self.fleet_publish_wait_replicas and bool(kombu_says)

    # --- hooks: Redis Cluster overrides these (service.transport.cluster_channel) ---------

    def fleet_poll_queues(self) -> list[str]:
        """The queues this poll covers: all of them, in one script, on one Redis."""
        return list(self.kombu._queue_cycle.consume(len(self.active_queues)))

    def fleet_wait_timeout(self) -> float:
        """Seconds an idle wait blocks on the wake lists."""
        return float(self.fleet_idle_timeout)

    def fleet_poll_connection(self, queues: list[str]) -> Any:
        """The event loop's connection that serves `queues`."""
        return self.client.connection

    def fleet_poll_empty(self, queues: list[str]) -> None:
        """A poll of `queues` found nothing: wait for a wake token next."""
        self.poller.idle = True

    def fleet_poll_refused(self, exc: Exception) -> None:
        """Redis answered the poll with an error (the caller backs off)."""

    def fleet_heartbeat_client(self) -> Any:
        """The client the process' heartbeat thread beats with."""
        return self.Client(connection_pool=self.pool)

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        tag = super().basic_consume(queue, *args, **kwargs)
        if queue not in self.kombu._fanout_queues:
            # Beat for the queue before the first pop, from the process' heartbeat thread.
            self._fleet_consumed.add(queue)
            client = self.fleet_heartbeat_client()
            script = self.fleet_script("heartbeat")
            self._fleet_heartbeat.add(queue, self.consumer_id, self, client, script)
        # A wait covers the queues consumed when it began (at start: only mingle's reply
        # queue). Ring one of them, so the next cycle waits on the new queue too.
        poller = self.poller
        if self._in_poll and poller.pending == "wait" and poller.waited:
            with self.conn_or_acquire() as client:
                client.lpush(wake_key(poller.waited[0]), WAKE_TOKEN)
        return tag

    def queue_bind(self, *args: Any, **kwargs: Any) -> Any:
        # A bind Redis refuses (full) at consumer start would stop the worker: reconnect.
        return refusal_as_connection_error(super().queue_bind, *args, **kwargs)

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
        deregister(self, queues)

    def _brpop_read(self, **options: Any) -> bool:
        return self.poller.read(**options)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        return self.poller.get(queue)

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
