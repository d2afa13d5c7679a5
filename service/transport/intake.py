"""What the transport's Channel does with each popped message before Celery sees it
(service.transport.poll holds one): parse it, dead-letter what cannot be a message, record
what cjson could not read but Python can, and deliver it as already recorded (kombu's QoS
then skips its second unacked write)."""

from __future__ import annotations

import logging
from typing import Any

from kombu.utils.json import dumps

from service.catalog.naming import (
    consumers_key,
    held_key,
    quarantine_field,
    quarantine_key,
    unacked_key,
)
from service.transport.envelope import MalformedEnvelope, parse_envelope
from service.transport.ownership_sweep import restore_held
from service.transport.quarantine import dead_letter_raw

logger = logging.getLogger("service.transport.channel")


class Intake:
    """`channel` is the transport's Channel (its consumer id, owned tags, scripts, QoS)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        # The delivery tag of the message being delivered (already recorded by the pop).
        self.tracked_tag: str | None = None

    def accept(self, list_key: str, item: bytes, tag: str, queue: str) -> dict[str, Any] | None:
        """The parsed message to deliver, or None when it went to the DLQ (or stays in
        quarantine / unacked because the DLQ write failed: nothing is lost either way)."""
        channel = self.channel
        if tag:
            channel.own(tag, queue)
        try:
            payload = parse_envelope(item)
            if tag and payload["properties"]["delivery_tag"] != tag:
                # The script's string search found a delivery tag that is not the message's
                # (a header of that name): never deliver a message under another's record.
                raise MalformedEnvelope("delivery_tag found outside the message properties")
        except MalformedEnvelope as exc:
            hash_key = quarantine_key(queue)
            with channel.conn_or_acquire() as client:
                if not tag:
                    dead_letter_raw(client, item, list_key, exc, hash_key)
                elif dead_letter_raw(client, item, list_key, exc, hash_key):
                    # cjson read it but Python cannot: the unacked record goes too.
                    channel.qos._remove_from_indices(tag, client.pipeline()).execute()
                    channel.forget(tag)
            return None
        if tag:
            return payload
        # Quarantined by cjson, readable by Python: track it before delivering.
        properties = payload["properties"]
        info = properties.get("delivery_info") or {}
        record = dumps([payload, info.get("exchange") or "", info.get("routing_key") or ""])
        tag = properties["delivery_tag"]
        consumer = channel.consumer_id
        keys = [quarantine_key(queue), unacked_key(queue), held_key(queue, consumer)]
        keys.append(consumers_key(queue))
        with channel.conn_or_acquire() as client:
            tracked = channel.fleet_script("track_quarantined")(
                keys=keys, args=[quarantine_field(list_key, item), tag, record, consumer],
                client=client,
            )  # fmt: skip
        if tracked:
            channel.own(tag, queue)
        return payload if tracked else None

    def deliver(self, payload: dict[str, Any], dest: str) -> None:
        """Hand a recorded message to kombu's consumer callback."""
        self.tracked_tag = payload["properties"]["delivery_tag"]
        try:
            self.channel.connection._deliver(payload, dest)
        finally:
            self.tracked_tag = None

    def tracked_by_pop(self, delivery_tag: str) -> bool:
        """Whether the message being delivered already has its unacked record."""
        tracked = self.tracked_tag == delivery_tag
        if tracked:
            self.tracked_tag = None
        return tracked

    def give_back(self, queue: str, tags: list[str]) -> None:
        """Return popped, undelivered messages to the head of `queue`, first one next."""
        channel = self.channel
        try:
            with channel.conn_or_acquire() as client:
                restore_held(channel.qos, client, queue, channel.consumer_id, tags[::-1], "owner")
        except Exception as exc:  # held by this consumer: back when it leaves or dies
            logger.warning("could not give back %d popped messages (%r)", len(tags), exc)
        for tag in tags:
            channel.forget(tag)
