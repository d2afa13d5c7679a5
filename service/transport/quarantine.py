"""The quarantine: bytes a pop found in a queue's list that Redis' cjson cannot read wait in
the queue's quarantine hash (`fleet:{<queue>}:quarantine`, in the queue's slot on Redis
Cluster) until the worker has decided (deliver, or dead-letter), so a crash in between loses
nothing. The one global hash of earlier releases (`fleet:quarantine`) is still drained, on a
single Redis, so items a previous release left there are not stranded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kombu.utils.encoding import bytes_to_str

from service.catalog.naming import (
    LEGACY_QUARANTINE_KEY,
    quarantine_field,
    quarantine_key,
    quarantine_list_key,
)
from service.config.redis_faults import is_redis_unavailable, note_refusal
from service.errors import FleetError
from service.transport.envelope import MalformedEnvelope, parse_envelope

logger = logging.getLogger(__name__)

# Where bytes that are not a message go: (bytes, the list they came from, why). The DLQ sits
# above the transport, so the app factory installs its writer here (service.app_factory)
# rather than the transport importing it.
PoisonSink = Callable[[bytes, str, BaseException], None]
_poison_sink: PoisonSink | None = None


class NoPoisonSink(FleetError):
    """The transport met bytes that are not a message before any dead-letter sink was set."""


def send_poison_to(sink: PoisonSink) -> None:
    global _poison_sink
    _poison_sink = sink


def dead_letter_poison(item: bytes, list_key: str, exc: BaseException) -> None:
    """Hand bytes the transport cannot decode to the installed sink (the DLQ's writer)."""
    if _poison_sink is None:
        raise NoPoisonSink("no dead-letter sink installed: create the app (service.app) first")
    _poison_sink(item, list_key, exc)


class _Retry:
    """Set when Redis was unavailable for a quarantine decision: the worker drains the
    quarantine again at a later poll (else the item waited for the next worker start)."""

    due = False


def drain_due() -> bool:
    due, _Retry.due = _Retry.due, False
    return due


def dead_letter_raw(
    client: Any, item: bytes, list_key: str, exc: BaseException, hash_key: str
) -> bool:
    """Move an item quarantined in `hash_key` to the DLQ; it stays there if that fails."""
    try:
        dead_letter_poison(item, list_key, exc)
    except Exception as write_error:
        if is_redis_unavailable(write_error):
            _Retry.due = True
            note_refusal("dead-letter", write_error, f"the item stays in {hash_key}")
            return False
        logger.exception("dead-letter write failed; the item stays in %s", hash_key)
        return False
    client.hdel(hash_key, quarantine_field(list_key, item))
    return True


def drain_quarantine_safely(client: Any, queues: list[str], legacy: bool = True) -> None:
    """drain_quarantine, retried at a later poll when Redis refuses it."""
    try:
        drain_quarantine(client, queues, legacy)
    except Exception as exc:
        if not is_redis_unavailable(exc):
            raise
        _Retry.due = True
        note_refusal("quarantine", exc)


def drain_quarantine(client: Any, queues: list[str], legacy: bool = True) -> int:
    """Items a crashed worker left quarantined in `queues` (between its pop and its
    decision): a message Python can read goes back to the tail of its list (next to be
    popped), anything else to the DLQ. Called once per worker process before its first
    poll, and again after a refusal. `legacy`: the global hash of earlier releases too
    (one Redis only: a cluster never had one)."""
    hashes = [quarantine_key(queue) for queue in queues]
    if legacy:
        hashes.append(LEGACY_QUARANTINE_KEY)
    drained = 0
    for hash_key in hashes:
        for field, item in client.hgetall(hash_key).items():
            list_key = quarantine_list_key(bytes_to_str(field))
            try:
                parse_envelope(item)
            except MalformedEnvelope:
                dead_letter_raw(
                    client, item, list_key, MalformedEnvelope("left in quarantine"), hash_key
                )
            else:
                # MULTI/EXEC (one slot: the list and the queue's hash share its tag; the
                # legacy hash exists on one Redis only): back in the list, out of quarantine.
                with client.pipeline(transaction=True) as pipe:
                    pipe.rpush(list_key, item).hdel(hash_key, field).execute()
            drained += 1
    return drained
