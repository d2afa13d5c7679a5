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


class Publisher:
    """The channel's publishing part (the channel holds one): kombu's `_put` and
    `_do_restore_message` of the transport's Channel call it. `channel` is kombu's Redis
    channel, whose helpers (_q_for_pri, _lookup, conn_or_acquire) it uses."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self._push_and_ring: Any = None

    def put(self, queue: str, message: dict[str, Any], kombu_put: Any, **kwargs: Any) -> None:
        """Queue `message` and ring `queue`'s wake list; `kombu_put` is kombu's own `_put`
        (publish batches and queues with an expiry take its path, then ring)."""
        channel = self.channel
        batch = kwargs.get("_publish_batch")
        if batch is not None or (channel._expires and queue in channel._expires):
            kombu_put(queue, message, **kwargs)
            if batch is not None:
                batch.add("lpush", wake_key(queue), WAKE_TOKEN)
            else:
                self.ring(queue)
            return
        key = channel._q_for_pri(queue, channel._get_message_priority(message, reverse=False))
        # One script, one round trip: the message, then its token (a woken worker finds it);
        # a token Redis refuses never fails a message that is queued.
        with channel.conn_or_acquire() as client:
            if self._push_and_ring is None:
                self._push_and_ring = client.register_script(PUSH_AND_RING)
            keys, args = [key, wake_key(queue)], [dumps(message), WAKE_TOKEN]
            replicas = int(getattr(channel, "fleet_publish_wait_replicas", 0) or 0)
            if replicas:  # FLEET_PUBLISH_WAIT_REPLICAS (service.transport.replicated)
                timeout = int(channel.fleet_publish_wait_timeout_ms)
                push_and_wait(client, self._push_and_ring, keys, args, replicas, timeout)
            else:
                self._push_and_ring(keys=keys, args=args, client=client)

    def ring(self, queue: str) -> None:
        """Push a wake token after a message was queued: a hint only, so its failure is
        logged, never raised to the publisher (the worker finds the message at its next
        poll)."""
        try:
            with self.channel.conn_or_acquire() as client:
                client.lpush(wake_key(queue), WAKE_TOKEN)
        except Exception as exc:
            logger.warning("wake token for queue %s not written (%s)", queue, type(exc).__name__)

    def check_routable(self, exchange: str, routing_key: str) -> None:
        """Raise MalformedEnvelope when kombu could not route a restored message (its own
        restore would log, drop the unacked record and lose the message)."""
        try:
            queues = self.channel._lookup(exchange, routing_key)
        except self.channel.connection_errors:
            raise
        except Exception as exc:
            raise MalformedEnvelope(
                f"no route for exchange {exchange!r}, routing key {routing_key!r}: "
                f"{type(exc).__name__}"
            ) from None
        if not queues:
            raise MalformedEnvelope(f"no queue bound to {exchange!r} / {routing_key!r}")

    def restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        # kombu's, minus its catch-all: here an error aborts the transaction (the record
        # stays) instead of deleting the record without requeueing the message.
        headers = payload.get("headers")
        if isinstance(headers, dict):
            headers["redelivered"] = True
        info = payload["properties"].setdefault("delivery_info", {})
        info["redelivered"] = True
        channel = self.channel
        pri = channel._get_message_priority(payload, reverse=False)
        for queue in channel._lookup(exchange, routing_key):
            list_key = channel._q_for_pri(queue, pri)
            (pipe.lpush if leftmost else pipe.rpush)(list_key, dumps(payload))
            pipe.lpush(wake_key(queue), WAKE_TOKEN)
