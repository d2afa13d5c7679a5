"""kombu's Redis transport, made lossless.

Stock kombu consumes with BRPOP and records the message in its `unacked` hash in a second,
separate write. A worker killed between the two (SIGKILL, OOM) or a Redis that persists the
pop but drops the reply (a restart) loses the message for good; fault tests R1/R2 caught
both. Here one Lua script pops the next message AND records it as unacked, atomically, so
kombu's visibility-timeout restore always finds it. Lua cannot block, so an empty poll is
followed by a short server-side wait (BLPOP on a key nobody writes) before the next poll.

Also: bytes in a queue's list that are not a kombu message go to the dead-letter queue
(stock kombu lets `loads()` fail, losing the item and tearing down the consumer); they are
held in a quarantine hash by the same script until the DLQ has them.

Registered for `redis://` and `rediss://` by `register()`, so URL handling stays kombu's."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from queue import Empty
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from service.dlq.message import SafeMessage

logger = logging.getLogger(__name__)

QUARANTINE_KEY = "fleet:quarantine"
# Longest an idle worker waits before polling again (also the added latency when idle).
IDLE_WAIT_SECONDS = 0.1

# KEYS: the lists in priority order, then unacked hash, unacked index, quarantine hash.
# ARGV: now (the same client clock kombu's own unacked index uses).
# The unacked value is kombu's format, [message, exchange, routing_key], built by string
# concatenation so the message bytes are stored exactly as they were (cjson re-encoding
# would turn [] into {} and change numbers).
_POP_AND_TRACK = """
local n = #KEYS - 3
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, msg = pcall(cjson.decode, item)
    local props = ok and type(msg) == 'table' and msg['properties']
    local tag = type(props) == 'table' and props['delivery_tag']
    if type(tag) == 'string' then
      local info = type(props['delivery_info']) == 'table' and props['delivery_info'] or {}
      local ex = type(info['exchange']) == 'string' and info['exchange'] or ''
      local rk = type(info['routing_key']) == 'string' and info['routing_key'] or ''
      redis.call('HSET', KEYS[n + 1], tag,
                 '[' .. item .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
      redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
    else
      redis.call('HSET', KEYS[n + 3], KEYS[i] .. '|' .. redis.sha1hex(item), item)
    end
    return {KEYS[i], item}
  end
end
return false
"""


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
    if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"), str):
        raise MalformedEnvelope("envelope has no properties.delivery_tag")
    if not isinstance(properties.get("delivery_info", {}), dict):
        raise MalformedEnvelope("envelope properties.delivery_info is not an object")
    if not isinstance(payload.get("headers", {}), dict | None):
        raise MalformedEnvelope("envelope headers is not an object")
    return payload


def _dead_letter_raw(client: Any, item: bytes, list_key: str, exc: BaseException) -> None:
    """Move a quarantined item to the DLQ; it stays quarantined if that fails."""
    from service.dlq.capture import capture_raw

    try:
        capture_raw(item, list_key, exc)
    except Exception:
        logger.exception("dead-letter write failed; the item stays in %s", QUARANTINE_KEY)
        return
    client.hdel(QUARANTINE_KEY, quarantine_field(list_key, item))


def quarantine_field(list_key: str, item: bytes) -> str:
    return f"{list_key}|{hashlib.sha1(item).hexdigest()}"


def drain_quarantine(client: Any) -> int:
    """Dead-letter items a crashed worker left quarantined (between its pop and its DLQ
    write). Called once per worker process, before its first poll."""
    drained = 0
    for field, item in client.hgetall(QUARANTINE_KEY).items():
        list_key = bytes_to_str(field).rsplit("|", 1)[0]
        _dead_letter_raw(client, item, list_key, MalformedEnvelope("left in quarantine"))
        drained += 1
    return drained


# The kombu stubs omit the Redis channel's private helpers used below.
_RedisChannel: Any = kombu_redis.Channel


class Channel(_RedisChannel):  # type: ignore[misc]
    # Messages whose body decoding cannot raise: bad bodies reach the DLQ (service.dlq.message).
    Message = SafeMessage
    _fleet_idle = False
    _fleet_pending: str | None = None
    _quarantine_drained = False  # once per process, shared by every channel

    def _poll_keys(self, queues: list[str]) -> list[str]:
        # kombu's BRPOP key order: every queue's most urgent list first.
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        return [*keys, self.unacked_key, self.unacked_index_key, QUARANTINE_KEY]

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.global_keyprefix:
            raise RuntimeError("celery-fleet's transport does not support global_keyprefix")
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if not Channel._quarantine_drained:
            Channel._quarantine_drained = True
            with self.conn_or_acquire() as client:
                drain_quarantine(client)
        if self._fleet_idle:
            wait = min(IDLE_WAIT_SECONDS, timeout or IDLE_WAIT_SECONDS)
            args: list[Any] = ["BLPOP", f"fleet:idle:{uuid.uuid4().hex}", wait]
            self._fleet_pending = "wait"
        else:
            keys = self._poll_keys(queues)
            args = ["EVAL", _POP_AND_TRACK, len(keys), *keys, time.time()]
            self._fleet_pending = "pop"
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        self.client.connection.send_command(*args)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVAL", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if self._fleet_pending == "wait":
                self._fleet_idle = False
                raise Empty()
            if not reply:
                self._fleet_idle = True
                raise Empty()
            self._fleet_idle = False
            raw_key, item = reply
            self._hand_over(bytes_to_str(raw_key), item)
            return True
        finally:
            self._in_poll = None
            self._fleet_pending = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _hand_over(self, list_key: str, item: bytes) -> None:
        dest = list_key.rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(dest)
        try:
            payload = parse_envelope(item)
        except MalformedEnvelope as exc:
            with self.conn_or_acquire() as client:
                _dead_letter_raw(client, item, list_key, exc)
            return
        self.connection._deliver(payload, dest)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            while True:
                keys = self._poll_keys([queue])
                reply = client.eval(_POP_AND_TRACK, len(keys), *keys, time.time())
                self._maybe_update_queues_expire(client, queue)
                if not reply:
                    raise Empty()
                list_key, item = bytes_to_str(reply[0]), reply[1]
                try:
                    return parse_envelope(item)
                except MalformedEnvelope as exc:
                    _dead_letter_raw(client, item, list_key, exc)


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make `redis://` and `rediss://` URLs use this transport in this process."""
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
