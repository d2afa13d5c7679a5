"""Restoring held messages: a dead consumer's (the sweep), or one's own (warm shutdown,
requeue), each exactly once, by the RESTORE_HELD script (service.transport.scripts).

Python reads the records and builds each message as kombu restores it (marked redelivered,
into the list of its priority); the script then checks, atomically, that the owner is still
dead (a live owner's messages are never restored) and pushes a message only when it deletes
its record (two sweeps racing never both push it)."""

from __future__ import annotations

import logging
from typing import Any

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps

from service.catalog.naming import consumers_key, held_key, unacked_key, wake_key
from service.transport.envelope import MalformedEnvelope
from service.transport.events import redelivered
from service.transport.records import parse_record, refused

logger = logging.getLogger("service.transport.qos")

# A dead consumer's messages are restored this many per script call.
RESTORE_CHUNK = 100

__all__ = ["redelivered", "remove_owned", "restore_dead", "restore_held"]


def remove_owned(pipe: Any, queue: str, consumer: str, tag: Any) -> Any:
    """Queue the removal of one held message's record (ack, dead-lettering) on `pipe`.
    The record goes first: a held entry left without its record (the connection lost
    between the two) is only dropped by a later restore, never pushed, so the two need no
    MULTI/EXEC."""
    return pipe.hdel(unacked_key(queue), tag).zrem(held_key(queue, consumer), tag)


def restore_held(
    qos: Any,
    client: Any,
    queue: str,
    consumer: str,
    tags: list[str],
    mode: str,
    *,
    leftmost: bool = False,
    reason: str | None = None,
) -> int:
    """Put `tags` held by `consumer` back into `queue`; the number restored, -1 when the
    owner turned out to be alive (mode = dead-owner timeout)."""
    channel = qos.channel
    records = client.hmget(unacked_key(queue), tags) if tags else []
    lists: list[str] = []
    argv: list[Any] = []
    for tag, raw in zip(tags, records, strict=True):
        if raw is None:  # acked meanwhile: only drop the held entry
            argv += [tag, 0, ""]
            continue
        try:
            message, _, _ = parse_record(raw)
        except MalformedEnvelope as exc:

            def remove(pipe: Any, tag: str = tag) -> Any:
                return remove_owned(pipe, queue, consumer, tag)

            qos.dead_letter_record(client, tag, raw, queue, exc, remove)
            continue
        target = channel.restore_list(message, queue)
        if target not in lists:
            lists.append(target)
        argv += [tag, lists.index(target) + 1, dumps(message)]
    keys = [consumers_key(queue), held_key(queue, consumer), unacked_key(queue), wake_key(queue)]
    try:
        count, beat, now = channel.fleet_script("restore_held")(
            keys=[*keys, *lists],
            args=[consumer, mode, "left" if leftmost else "right", *argv],
            client=client,
        )
    except channel.ResponseError as exc:
        refused(exc, unacked_key(queue))
    count = int(count)
    if count > 0 and reason is not None:
        beat_text = bytes_to_str(beat)
        delay = float(bytes_to_str(now)) - float(beat_text) if beat_text else None
        redelivered(queue, reason, count, delay if reason == "dead_worker" else None)
        if reason == "dead_worker":
            logger.warning(
                "restored %d message(s) of dead consumer %s to queue %s (last heartbeat %s)",
                count,
                consumer,
                queue,
                f"{delay:.1f}s ago" if delay is not None else "never seen",
            )
    return count


def restore_dead(qos: Any, client: Any, queue: str, consumer: str, timeout: float) -> None:
    """Restore everything `consumer` (found dead by a heartbeat) holds of `queue`."""
    held = held_key(queue, consumer)
    for _ in range(1 + int(client.zcard(held)) // RESTORE_CHUNK + 1):
        # Newest first: each restore pushes onto the head, so the oldest ends up next.
        tags = [bytes_to_str(t) for t in client.zrange(held, 0, RESTORE_CHUNK - 1, desc=True)]
        restored = restore_held(qos, client, queue, consumer, tags, repr(float(timeout)),
                                reason="dead_worker")  # fmt: skip
        if restored < 0 or len(tags) < RESTORE_CHUNK:
            return
