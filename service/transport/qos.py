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
from kombu.utils.json import loads

from service.config.redis_faults import REFUSALS, is_redis_unavailable
from service.errors import FleetError
from service.transport.envelope import MalformedEnvelope, check_envelope
from service.transport.pending import pending_writes
from service.transport.quarantine import dead_letter_poison

logger = logging.getLogger(__name__)

# Seconds between two identical warnings (a full Redis would log once per sweep otherwise).
WARN_EVERY = 60.0
_last_warned: dict[str, float] = {}


def warn_throttled(key: str, message: str, *args: Any) -> None:
    now = time.monotonic()
    if now - _last_warned.get(key, -WARN_EVERY) >= WARN_EVERY:
        _last_warned[key] = now
        logger.warning(message, *args)


class RestoreRefused(FleetError):
    """Redis refused a restore write (e.g. OOM under noeviction); the record is kept."""


def parse_record(raw: bytes) -> tuple[dict[str, Any], str, str]:
    """kombu's unacked record, [message, exchange, routing_key], checked as a whole."""
    try:
        record = loads(bytes_to_str(raw))
    except Exception as exc:
        raise MalformedEnvelope(f"unacked record is not JSON: {type(exc).__name__}") from None
    if not (isinstance(record, list) and len(record) == 3):
        raise MalformedEnvelope("unacked record is not [message, exchange, routing_key]")
    message, exchange, routing_key = record
    if not isinstance(exchange, str) or not isinstance(routing_key, str):
        raise MalformedEnvelope("unacked record has a non-string exchange or routing key")
    check_envelope(message)
    return message, exchange, routing_key


_RedisQoS: Any = kombu_redis.QoS


class FleetQoS(_RedisQoS):  # type: ignore[misc]
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
            # (service.transport.pending); the error never reaches Celery's event loop.
            pending_writes.keep("ack", delivery_tag, exc)
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception as exc:
            if is_redis_unavailable(exc):
                pending_writes.keep("requeue" if requeue else "ack", delivery_tag, exc)
            elif not isinstance(exc, RestoreRefused):
                raise
            # Kept in unacked: written later, or requeued by the sweep after the visibility
            # timeout.
            virtual.QoS.ack(self, delivery_tag)

    def flush_pending(self) -> None:
        """Write the acks and requeues Redis refused earlier (called before each poll)."""
        if pending_writes:
            pending_writes.flush(self._write_kept, self.visibility_timeout / 2)

    def _write_kept(self, operation: str, tag: str) -> None:
        if operation == "ack":
            self._remove_from_indices(tag).execute()
        else:
            self.restore_by_tag(tag, leftmost=True)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        # Most sweeps find nothing overdue: one ZRANGE instead of kombu's lock, ZRANGE and
        # unlock (5 commands), which is most of an idle worker's Redis cost.
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
        # At shutdown: restore what can be restored; the rest stays in unacked for the sweep.
        with self.channel.conn_or_acquire(client) as client:
            for tag in list(self._delivered):
                try:
                    self.restore_by_tag(tag, client=client)
                except RestoreRefused:
                    break
        self._delivered.clear()

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        channel = self.channel
        with channel.conn_or_acquire(client) as client:
            raw = client.hget(self.unacked_key, tag)
            if raw is None:
                # Acked meanwhile, or only a stale index entry: kombu's own path cleans up.
                self._run_restore(client, tag, leftmost)
                return
            try:
                _, exchange, routing_key = parse_record(raw)
                channel.check_routable(exchange, routing_key)
            except MalformedEnvelope as exc:
                self._dead_letter_record(client, tag, raw, routing_key_hint(raw), exc)
                return
            self._run_restore(client, tag, leftmost)

    def _run_restore(self, client: Any, tag: Any, leftmost: bool) -> None:
        try:
            super().restore_by_tag(tag, client=client, leftmost=leftmost)
        except self.channel.ResponseError as exc:
            warn_throttled(
                "restore",
                "Redis refused to requeue unacked messages (%s); they stay in %s and the "
                "next sweep tries again",
                exc,
                self.unacked_key,
            )
            raise RestoreRefused(str(exc)) from exc

    def _dead_letter_record(
        self, client: Any, tag: Any, raw: bytes, queue_hint: str, exc: MalformedEnvelope
    ) -> None:
        try:
            dead_letter_poison(raw, queue_hint, exc)
        except Exception as write_error:
            warn_throttled(
                f"dlq-record-{bytes_to_str(tag)}",
                "unacked record %s cannot be restored (%s) and the dead-letter write failed "
                "(%s); it stays in %s",
                bytes_to_str(tag),
                exc,
                type(write_error).__name__,
                self.unacked_key,
            )
            return
        logger.error(
            "unacked record %s cannot be restored (%s): dead-lettered", bytes_to_str(tag), exc
        )
        self._remove_from_indices(tag, client.pipeline()).execute()


def routing_key_hint(raw: bytes) -> str:
    """The queue a broken record probably came from, for the DLQ entry (default if unknown)."""
    try:
        record = loads(bytes_to_str(raw))
        hint = record[2] if isinstance(record, list) and len(record) == 3 else ""
        return hint if isinstance(hint, str) else ""
    except Exception:
        return ""
