"""Publishing and restoring for the fleet transport: every message pushed into a queue also
pushes a wake token to that queue's wake list, in the same round trip, so idle workers
blocked on the wake lists pick it up at once (see service.transport)."""

from __future__ import annotations

import logging
from typing import Any

from kombu.utils.json import dumps

from service.catalog.naming import wake_key
from service.transport.envelope import MalformedEnvelope
from service.transport.replicated import push_and_wait

logger = logging.getLogger(__name__)

WAKE_TOKEN = "1"

# KEYS: the queue's priority list, its wake list. ARGV: message, token.
# The message first: when Redis refuses it (full) the caller gets the error and nothing is
# queued. Once it is in, the token is pcall'ed: a foreign value under the wake key (ours,
# fleet:{<queue>}:wake) is replaced, and any error there is swallowed: the publish has succeeded
# and the caller must not see an error (it would publish a copy).
PUSH_AND_RING = """
redis.call('LPUSH', KEYS[1], ARGV[1])
local rung = redis.pcall('LPUSH', KEYS[2], ARGV[2])
if type(rung) == 'table' and rung.err then
  redis.pcall('DEL', KEYS[2])
  redis.pcall('LPUSH', KEYS[2], ARGV[2])
end
return 1
"""


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
                self._ring(queue)
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        # One script, one round trip: the message, then its token (a woken worker finds it);
        # a token Redis refuses never fails a message that is queued.
        with self.conn_or_acquire() as client:
            script = self.__dict__.get("_fleet_push_and_ring")
            if script is None:
                script = self.__dict__["_fleet_push_and_ring"] = client.register_script(
                    PUSH_AND_RING
                )
            keys, args = [key, wake_key(queue)], [dumps(message), WAKE_TOKEN]
            replicas = int(getattr(self, "fleet_publish_wait_replicas", 0) or 0)
            if replicas:  # hook: FLEET_PUBLISH_WAIT_REPLICAS (service.transport.replicated)
                timeout = int(self.fleet_publish_wait_timeout_ms)
                push_and_wait(client, script, keys, args, replicas, timeout)
            else:
                script(keys=keys, args=args, client=client)

    def _ring(self, queue: str) -> None:
        """Push a wake token after a message was queued: a hint only, so its failure is
        logged, never raised to the publisher (the worker finds the message at its next
        poll)."""
        try:
            with self.conn_or_acquire() as client:
                client.lpush(wake_key(queue), WAKE_TOKEN)
        except Exception as exc:
            logger.warning("wake token for queue %s not written (%s)", queue, type(exc).__name__)

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
