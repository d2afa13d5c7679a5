"""Ack emulation on Redis Cluster: only the per-queue records (service.catalog.naming,
every key of a queue in its slot).

On one Redis the QoS also serves kombu's global `unacked`/`unacked_index` records (stock
kombu clients, the previous release): two keys in two slots, written in one MULTI, and a
sweep under a third key's lock. No stock client can run on a cluster, so no such record
exists there: the global records are never written, read or swept (a message this
transport did not pop, a fanout message, has nothing stored to ack). An ack is the
record's removal in one MULTI/EXEC on the queue's slot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import virtual

from service.transport.qos import FleetQoS


class ClusterQoS(FleetQoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        # Recorded by the pop script, or (fanout) never stored: only the in-memory part.
        self.channel.tracked_by_pop(delivery_tag)
        virtual.QoS.append(self, message, delivery_tag)

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        if pipe is not None:
            yield pipe
            return
        with self.channel.conn_or_acquire(client) as client:
            # One slot (the record and the held set share the queue's tag): atomic.
            yield client.pipeline(transaction=True)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        if self.channel.owned_queue(delivery_tag) is None and not self.channel.closed:
            with self.pipe_or_acquire(pipe) as pipe:
                return pipe  # no global record on a cluster: nothing to remove
        return super()._remove_from_indices(delivery_tag, pipe)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        """No global records to look at on a cluster (dead owners' messages come back by
        the heartbeat's sweep)."""

    def restore_by_tag(
        self, tag: Any, client: Any = None, leftmost: bool = False, reason: str | None = None
    ) -> None:
        if self.channel.owned_queue(tag) is None:
            return  # not popped by this consumer: no record on a cluster
        super().restore_by_tag(tag, client=client, leftmost=leftmost, reason=reason)
