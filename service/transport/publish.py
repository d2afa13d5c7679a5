"""Publishing and restoring for the fleet transport: every message pushed into a queue also
pushes a wake token to that queue's wake list, in the same round trip, so idle workers
blocked on the wake lists pick it up at once (see service.transport)."""

from __future__ import annotations

from typing import Any

from kombu.utils.json import dumps

from service.catalog.naming import wake_key
from service.transport.envelope import MalformedEnvelope

WAKE_TOKEN = "1"


# The mixin uses kombu's Redis channel internals, which come after it in the Channel's MRO.
_KombuChannelInternals: Any = object


class RingingPublisher(_KombuChannelInternals):  # type: ignore[misc]
    """Mixed into the transport's Channel, before kombu's Redis channel."""

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        batch = kwargs.get("_publish_batch")
        if batch is not None or (self._expires and queue in self._expires):
            super()._put(queue, message, **kwargs)
            if batch is not None:
                batch.add("lpush", wake_key(queue), WAKE_TOKEN)
            else:
                with self.conn_or_acquire() as client:
                    client.lpush(wake_key(queue), WAKE_TOKEN)
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        # One round trip; the token after the message, so a woken worker finds it.
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, dumps(message)).lpush(wake_key(queue), WAKE_TOKEN).execute()

    def check_routable(self, exchange: str, routing_key: str) -> None:
        """Raise MalformedEnvelope when kombu could not route a restored message (its own
        restore would log, drop the unacked record and lose the message)."""
        try:
            queues = self._lookup(exchange, routing_key)
        except self.connection_errors:
            raise
        except Exception as exc:
            raise MalformedEnvelope(
                f"no route for exchange {exchange!r}, routing key {routing_key!r}: "
                f"{type(exc).__name__}"
            ) from None
        if not queues:
            raise MalformedEnvelope(f"no queue bound to {exchange!r} / {routing_key!r}")

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        # kombu's, minus its catch-all: here an error aborts the transaction (the record
        # stays) instead of deleting the record without requeueing the message.
        headers = payload.get("headers")
        if isinstance(headers, dict):
            headers["redelivered"] = True
        info = payload["properties"].setdefault("delivery_info", {})
        info["redelivered"] = True
        pri = self._get_message_priority(payload, reverse=False)
        for queue in self._lookup(exchange, routing_key):
            (pipe.lpush if leftmost else pipe.rpush)(self._q_for_pri(queue, pri), dumps(payload))
            pipe.lpush(wake_key(queue), WAKE_TOKEN)
