"""Ack emulation for the lossless transport: kombu's Redis QoS, minus the second unacked
write, and a restore sweep that handles each record on its own.

kombu writes the unacked record when a message is delivered (MULTI, ZADD, HSET, EXEC); our
pop script has already written it atomically with the pop, so that write only cost commands.
kombu's sweep stops at the first record it cannot restore ("Error in timer") and, when the
restore itself raises inside its transaction, deletes the record without requeueing it. Here
a record Python cannot read, or that could not be routed back, is dead-lettered with its raw
bytes (or kept, when the dead-letter write fails) and the sweep goes on with the next one; a
Redis that refuses the write (full, noeviction) ends the sweep with a warning, loses
nothing, and the next sweep tries again."""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from redis.exceptions import ConnectionError as RedisConnectionError

from service.config.redis_faults import REFUSALS, is_redis_unavailable
from service.transport.envelope import MalformedEnvelope
from service.transport.ownership_sweep import (
    redelivered,
    remove_owned,
    restore_held,
)
from service.transport.pending import pending_writes
from service.transport.quarantine import dead_letter_poison
from service.transport.records import (
    RestoreRefused,
    parse_record,
    refused,
    routing_key_hint,
    warn_throttled,
)

logger = logging.getLogger(__name__)

_RedisQoS: Any = kombu_redis.QoS


# kombu's global unacked records are checked at most this often.
LEGACY_SWEEP_SECONDS = 60.0


class FleetQoS(_RedisQoS):  # type: ignore[misc]
    """Messages this transport popped are recorded per queue and per consumer
    (service.catalog.naming: unacked_key, held_key); a tag the channel does not own came
    from kombu's global `unacked` hash (the previous release, a stock client) and takes
    kombu's path."""

    _fleet_legacy_swept = float("-inf")

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.tracked_by_pop(delivery_tag):
            # Recorded by the pop script already: only the in-memory bookkeeping.
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        except Exception as exc:
            if not is_redis_unavailable(exc):
                raise
            # Full, read-only, gone: the record stays and the ack is written later
            # (service.transport.pending); the error never reaches Celery's event loop. The
            # tag stays owned until then: the kept write needs its queue.
            pending_writes.keep("ack", delivery_tag, exc)
            virtual.QoS.ack(self, delivery_tag)
            return
        self.channel.forget(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self.channel.closed:
            # Its connection is gone (a Redis restart): no client to write with. The record
            # stays held by this channel's consumer id, which beats no more, and comes back
            # after the dead-owner timeout.
            virtual.QoS.ack(self, delivery_tag)
            return
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception as exc:
            if is_redis_unavailable(exc):
                # Written later (service.transport.pending); the tag stays owned until then.
                pending_writes.keep("requeue" if requeue else "ack", delivery_tag, exc)
                virtual.QoS.ack(self, delivery_tag)
                return
            if not isinstance(exc, RestoreRefused):
                raise
            # Kept as unacked: restored when this consumer leaves or dies.
            virtual.QoS.ack(self, delivery_tag)
        self.channel.forget(delivery_tag)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        if pipe is None and self.channel.closed:
            # A task that outlived its connection (Redis restart): Celery logs the failed ack;
            # the record stays held by the closed channel's consumer id, which beats no more,
            # and comes back after the dead-owner timeout (the task may run again).
            raise RedisConnectionError("channel closed before the ack")
        queue = self.channel.owned_queue(delivery_tag)
        if queue is None:
            return super()._remove_from_indices(delivery_tag, pipe)
        if pipe is None:
            # The ack: one round trip, no transaction needed (remove_owned).
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
        return remove_owned(pipe, queue, self.channel.consumer_id, delivery_tag)

    def flush_pending(self) -> None:
        """Write the acks and requeues Redis refused earlier (called before each poll)."""
        if pending_writes:
            pending_writes.flush(self._write_kept, self.visibility_timeout / 2)

    def _write_kept(self, operation: str, tag: str) -> None:
        if operation == "ack":
            self._remove_from_indices(tag).execute()
            self.channel.forget(tag)
        else:
            self.restore_by_tag(tag, leftmost=True)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        # Only kombu's global records (stock clients, the previous release) once older than
        # the visibility timeout: dead owners' messages are restored by the heartbeat thread
        # (service.transport.ownership). A safety net needs no 10 s resolution: looked at
        # once per LEGACY_SWEEP_SECONDS (at most half the visibility timeout), one ZRANGE
        # instead of kombu's lock, ZRANGE and unlock.
        now = time.monotonic()
        every = min(LEGACY_SWEEP_SECONDS, self.visibility_timeout / 2)
        if now - self._fleet_legacy_swept < every:
            return
        self._fleet_legacy_swept = now
        with self.channel.conn_or_acquire() as client:
            ceil = time.time() - self.visibility_timeout
            if not client.zrange(self.unacked_index_key, ceil, 0, desc=True, byscore=True,
                                 offset=0, num=1):  # fmt: skip
                return
        # Logged where it happened; the next sweep tries again.
        try:
            super().restore_visible(*args, **kwargs)
        except RestoreRefused as exc:
            if is_redis_unavailable(exc):
                REFUSALS.labels("restore").inc()

    def restore_unacked(self, client: Any = None) -> None:
        # At close: give back what was delivered and not acked (prefetched, ETA-held).
        try:
            with self.channel.conn_or_acquire(client) as client:
                for tag in list(self._delivered):
                    self.restore_by_tag(tag, client=client, reason="shutdown")
        except (RestoreRefused, *self.channel.connection_errors) as exc:
            # A lost connection (or a full Redis): they stay held by this channel's consumer
            # id, which beats no more, and come back after the dead-owner timeout.
            logger.warning("could not give back unacked messages at close (%r)", exc)
        finally:
            self._delivered.clear()

    def restore_by_tag(
        self, tag: Any, client: Any = None, leftmost: bool = False, reason: str | None = None
    ) -> None:
        channel = self.channel
        queue = channel.owned_queue(tag)
        with channel.conn_or_acquire(client) as client:
            if queue is not None:
                restore_held(
                    self, client, queue, channel.consumer_id, [bytes_to_str(tag)], "owner",
                    leftmost=leftmost, reason=reason,
                )  # fmt: skip
                channel.forget(tag)
                return
            raw = client.hget(self.unacked_key, tag)
            if raw is None:
                # Acked meanwhile, or only a stale index entry: kombu's own path cleans up.
                self._run_restore(client, tag, leftmost)
                return
            try:
                _, exchange, routing_key = parse_record(raw)
                channel.check_routable(exchange, routing_key)
            except MalformedEnvelope as exc:
                self.dead_letter_record(
                    client, tag, raw, routing_key_hint(raw), exc,
                    lambda pipe: super(FleetQoS, self)._remove_from_indices(tag, pipe),
                )  # fmt: skip
                return
            self._run_restore(client, tag, leftmost)
            redelivered(routing_key or "", "visibility_timeout", 1)

    def _run_restore(self, client: Any, tag: Any, leftmost: bool) -> None:
        try:
            super().restore_by_tag(tag, client=client, leftmost=leftmost)
        except self.channel.ResponseError as exc:
            refused(exc, self.unacked_key)

    def dead_letter_record(
        self,
        client: Any,
        tag: Any,
        raw: bytes,
        queue_hint: str,
        exc: MalformedEnvelope,
        remove: Any,
    ) -> None:
        try:
            dead_letter_poison(raw, queue_hint, exc)
        except Exception as write_error:
            warn_throttled(
                f"dlq-record-{bytes_to_str(tag)}",
                "unacked record %s cannot be restored (%s) and the dead-letter write failed "
                "(%s); it stays unacked",
                bytes_to_str(tag),
                exc,
                type(write_error).__name__,
            )
            return
        logger.error(
            "unacked record %s cannot be restored (%s): dead-lettered", bytes_to_str(tag), exc
        )
        remove(client.pipeline()).execute()
