"""The broker transport on Redis Cluster (`rediscluster://`, `redisscluster://`).

Every key of a queue carries its hash tag (`{<queue>}`: the message lists, unacked records,
held sets, consumers, wake list, quarantine; service.catalog.naming), so each script of the
transport (pop, publish, ack, restore, heartbeat) touches one slot. What stays different
from one Redis:

- Synchronous commands go through redis-py's RedisCluster (it follows MOVED/ASK and re-reads
  the topology after a failover; service.transport.cluster_nodes).
- The event loop polls one slot at a time, on a connection to the node that serves it: a
  worker consuming several queues pops them in turn, one queue (one slot) per cycle,
  starting each cycle with the next queue, so a queue that is always full never starves the
  others. It waits for a wake token only once every queue came back empty in a row; that
  wait blocks on one queue's wake list (BLPOP over several slots is CROSSSLOT) for at most
  MULTI_SLOT_WAIT_SECONDS before it polls and moves to the next queue. A worker of one
  queue (the production shape: one pool per queue) waits the full idle timeout, on one
  connection, exactly as on one Redis.
- A poll answered with MOVED, ASK or CLUSTERDOWN (failover, resharding) backs off and
  re-reads the topology; a lost connection reconnects the consumer, as on one Redis.
- kombu's binding tables use per-exchange keys in one slot (service.transport.cluster_bindings),
  the ack emulation only per-queue records (service.transport.cluster_qos), and fanout
  (task events, `celery inspect`/`control`) PUBLISH and PSUBSCRIBE, which a cluster
  propagates to every node: the subscriber listens on one primary."""

from __future__ import annotations

import random
from contextlib import suppress
from typing import Any

import redis
from kombu.utils.objects import cached_property
from redis.crc import key_slot
from redis.exceptions import ClusterError, RedisClusterException, TryAgainError

from service.catalog.naming import queue_hash_tag
from service.errors import FleetError
from service.transport.channel import Channel, Transport
from service.transport.cluster_bindings import ClusterBindings
from service.transport.cluster_nodes import NodeConnections, cluster_client
from service.transport.cluster_qos import ClusterQoS

# A worker polling queues on several slots waits on one queue's wake list at most this long
# before it polls and waits on the next: the pickup latency of a message that arrives while
# the worker waits elsewhere, at most (queues - 1) x this (a catch-all or `fleet dev` pool).
MULTI_SLOT_WAIT_SECONDS = 1.0


class _Topology:
    """Set when a poll met a moved slot or a lost node: the next poll re-reads the topology
    (shared by every channel of the process, which share the cluster client)."""

    stale = False


class ClusterChannel(ClusterBindings, Channel):
    QoS = ClusterQoS
    fleet_cluster = True

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        # The transport parses no URL (can_parse_url): hostname is the whole broker URL.
        url = str(connection.client.hostname)
        cluster: Any = cluster_client(url)
        self.fleet_cluster_client = cluster
        self._fleet_nodes = NodeConnections(url, self._fleet_node_dropped)
        self._fleet_groups_for: tuple[str, ...] = ()
        self._fleet_group_list: list[list[str]] = []
        self._fleet_next_group = 0
        self._fleet_empty_in_row = 0
        self._fleet_cycle_empty = False
        self._registered = False
        if _Topology.stale:  # a reconnect after a lost node: read the topology first
            cluster.nodes_manager.initialize()
            _Topology.stale = False
        # The event loop's client: one connection at a time, to the node polled now.
        node = cluster.get_default_node()
        poll_client = redis.Redis(connection_pool=self._fleet_nodes.pool(node))
        poll_client.connection = self._fleet_nodes.connection(node)
        self.client = poll_client
        try:
            super().__init__(connection, **kwargs)  # kombu pings on the poll connection
        except Exception:
            _Topology.stale = True
            self._fleet_nodes.close()
            raise
        # kombu fills in the database from its single-node pool, which a cluster has not
        # (database 0 only).
        channel: Any = self
        channel.keyprefix_fanout = str(channel.keyprefix_fanout).format(db=0)

    # --- clients ----------------------------------------------------------------------------

    def _create_client(self, asynchronous: bool = False) -> Any:
        return self.fleet_cluster_client

    def _get_pool(self, asynchronous: bool = False) -> Any:
        raise FleetError("the cluster transport has no single-node pool (internal error)")

    @property
    def supports_batch_publish(self) -> bool:
        return not self.retry_on_timeout and not self.fleet_publish_wait_replicas

    @cached_property
    def subclient(self) -> Any:
        """Pub/sub on one primary: a cluster forwards every PUBLISH to every node."""
        node = random.choice(self.fleet_cluster_client.get_primaries())
        client: Any = redis.Redis(connection_pool=self._fleet_nodes.pool(node))
        return client.pubsub()

    def fleet_heartbeat_client(self) -> Any:
        return self.fleet_cluster_client

    def _fleet_node_dropped(self, connection: Any) -> None:
        if self._registered:
            self.kombu._on_connection_disconnect(connection)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._fleet_nodes.close()

    # --- kombu's queue commands, one key each (a cluster pipeline's delete() returns None,
    # so kombu's chained pipelines break there; its `client` argument would be the poll
    # connection, bound to one node)

    def _delete(
        self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any
    ) -> None:
        self.auto_delete_queues.discard(queue)
        member = self.sep.join([routing_key or "", pattern or "", queue or ""])
        client = self.fleet_cluster_client
        client.srem(self.keyprefix_queue % (exchange,), member)
        client.srem(self.keyprefix_binding_permanent % (exchange,), member)
        client.delete(*self._fleet_lists(queue))  # one slot: the queue's tag

    def _purge(self, queue: str) -> int:
        lists = self._fleet_lists(queue)
        with self.fleet_cluster_client.pipeline(transaction=True) as pipe:
            for key in lists:
                pipe.llen(key)
            pipe.delete(*lists)
            sizes = pipe.execute()
        return sum(int(size) for size in sizes[: len(lists)])

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return bool(self.fleet_cluster_client.exists(*self._fleet_lists(queue)))

    def _fleet_lists(self, queue: str) -> list[str]:
        return [self._q_for_pri(queue, pri) for pri in self.priority_steps]

    # --- polling, one slot per cycle ----------------------------------------------------------

    def _fleet_groups(self) -> list[list[str]]:
        """The consumed queues grouped by slot (queues whose tags share a slot are popped by
        one script), in consumption order."""
        queues = tuple(self.active_queues)
        if queues != self._fleet_groups_for:
            groups: dict[int, list[str]] = {}
            for queue in queues:
                groups.setdefault(key_slot(queue_hash_tag(queue).encode()), []).append(queue)
            self._fleet_group_list = list(groups.values())
            self._fleet_groups_for = queues
        return self._fleet_group_list

    def fleet_poll_queues(self) -> list[str]:
        groups = self._fleet_groups()
        if not groups:
            return []
        if not self._fleet_cycle_empty:  # the last cycle delivered (or backed off)
            self._fleet_empty_in_row = 0
        self._fleet_cycle_empty = False
        group = groups[self._fleet_next_group % len(groups)]
        self._fleet_next_group = (self._fleet_next_group + 1) % len(groups)
        return list(group)

    def fleet_poll_empty(self, queues: list[str]) -> None:
        self._fleet_cycle_empty = True
        self._fleet_empty_in_row += 1
        if self._fleet_empty_in_row >= len(self._fleet_groups()):
            self.poller.idle = True

    def fleet_wait_timeout(self) -> float:
        if len(self._fleet_groups()) > 1:
            return min(float(self.fleet_idle_timeout), MULTI_SLOT_WAIT_SECONDS)
        return float(self.fleet_idle_timeout)

    def fleet_poll_refused(self, exc: Exception) -> None:
        _Topology.stale = True

    def fleet_poll_connection(self, queues: list[str]) -> Any:
        cluster = self.fleet_cluster_client
        if _Topology.stale:
            _Topology.stale = False
            cluster.nodes_manager.initialize()
        node = cluster.get_node_from_key(queue_hash_tag(queues[0]))
        connection = self._fleet_nodes.connection(node)
        if self.client.connection is not connection:
            self._fleet_repoint(connection)
        return connection

    def _fleet_repoint(self, connection: Any) -> None:
        """Point the event loop's client at another node's connection: the poller forgets
        the old socket and watches the new one."""
        cycle: Any = self.connection.cycle
        ident = (self, self.client, "BRPOP")
        sock = cycle._chan_to_sock.pop(ident, None)
        if sock is not None:
            fd = -1
            with suppress(OSError):
                fd = sock.fileno()
            if fd >= 0:
                if cycle._fd_to_chan.get(fd) == (self, "BRPOP"):
                    del cycle._fd_to_chan[fd]
                with suppress(Exception):
                    cycle._unregister_from_poll(fd)
        self.client.connection = connection
        cycle._register(self, self.client, "BRPOP")

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))
        except self.kombu.connection_errors:
            _Topology.stale = True  # a node gone: read the topology again on reconnect
            raise


class ClusterTransport(Transport):
    """kombu transport for `rediscluster://` and `redisscluster://` (registered by
    service.config.cluster_mode). It parses no URL: the channel reads the whole URL, so
    its query options (TLS, timeouts) reach redis-py as they are."""

    Channel = ClusterChannel
    can_parse_url = True
    connection_errors = (
        *Transport.connection_errors,
        ClusterError,
        TryAgainError,
        RedisClusterException,
    )
