"""kombu's Redis transport, hardened: an item in a queue's Redis list that is not a kombu
message (not JSON, or JSON without the envelope fields) goes to the dead-letter queue.

Stock kombu calls `loads()` on the popped item and lets the error escape: the item is
already gone from the list and not yet in the unacked hash, so it is lost, and the
exception tears down the consumer. Registered for `redis://` and `rediss://` by
`register()`, so URL handling (TLS, sentinel-free options) stays kombu's own."""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

logger = logging.getLogger(__name__)


class MalformedEnvelope(ValueError):
    """The bytes in the list are not a kombu message."""


def parse_envelope(item: bytes | str) -> dict[str, Any]:
    try:
        payload = loads(bytes_to_str(item))
    except Exception as exc:  # kombu's loads raises several types for garbage
        raise MalformedEnvelope(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise MalformedEnvelope(f"envelope is a JSON {type(payload).__name__}, not an object")
    properties = payload.get("properties")
    if not isinstance(properties, dict) or "delivery_tag" not in properties:
        raise MalformedEnvelope("envelope has no properties.delivery_tag")
    if not isinstance(properties.get("delivery_info", {}), dict):
        raise MalformedEnvelope("envelope properties.delivery_info is not an object")
    if not isinstance(payload.get("headers", {}), dict | None):
        raise MalformedEnvelope("envelope headers is not an object")
    return payload


def _dead_letter_raw(item: bytes, list_key: str, exc: BaseException) -> None:
    from service.dlq.capture import capture_raw

    try:
        capture_raw(item, list_key, exc)
    except Exception:
        # Last resort: the DLQ is unreachable. Put the bytes back at the tail (consumed
        # next) would spin; the head keeps FIFO order fair and the item is not lost.
        logger.exception("dead-letter write failed for a malformed item; pushing it back")
        from service.redis_client import broker_redis

        broker_redis().lpush(list_key, item)


# The kombu stubs omit the Redis channel's private helpers used below.
_RedisChannel: Any = kombu_redis.Channel


class Channel(_RedisChannel):  # type: ignore[misc]
    def _brpop_read(self, **options: Any) -> bool:
        # Mirrors kombu 5.7 Channel._brpop_read; only the parse step differs.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if dest__item:
                raw_dest, item = dest__item
                dest = bytes_to_str(raw_dest).rsplit(self.sep, 1)[0]
                self._queue_cycle.rotate(dest)
                try:
                    payload = parse_envelope(item)
                except MalformedEnvelope as exc:
                    _dead_letter_raw(item, bytes_to_str(raw_dest), exc)
                    return True
                self.connection._deliver(payload, dest)
                return True
            raise Empty()
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                key = self._q_for_pri(queue, pri)
                item = client.rpop(key)
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    try:
                        return parse_envelope(item)
                    except MalformedEnvelope as exc:
                        _dead_letter_raw(item, key, exc)
                        continue
            self._maybe_update_queues_expire(client, queue)
            raise Empty()


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make `redis://` and `rediss://` URLs use this transport in this process."""
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
