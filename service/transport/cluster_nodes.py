"""Redis Cluster plumbing for the broker transport: the process' RedisCluster client (the
synchronous commands: publish, ack, restore, heartbeats, scripts) and the event loop's own
connections, one per node it polls.

kombu's event loop reads replies on one socket per channel. On a cluster a poll (the pop
script, or the idle wait on a wake list) touches one queue's slot, so it must go to the node
that serves that slot: the channel keeps one connection per node and points its poll at
the node of the queue it polls this cycle (service.transport.cluster_channel). These
connections tell kombu's poller when they drop, as kombu's own asynchronous ones do."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.retry import Retry

from service.config.redis_client import connect
from service.config.redis_url import CLUSTER_SCHEMES, node_url

# A failover takes the cluster node timeout plus an election (seconds): the synchronous
# client retries a command that long (MOVED, a dropped connection, CLUSTERDOWN) before the
# error reaches kombu, which then reconnects and retries a publish once more.
CLUSTER_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=12)

_clients: dict[tuple[str, int], RedisCluster] = {}
_lock = threading.Lock()


def cluster_client(url: str) -> RedisCluster:
    """The process' client of the cluster at `url` (one per URL and process: each holds a
    pool per node; a forked child makes its own)."""
    key = (url, os.getpid())
    with _lock:
        if key not in _clients:
            made = connect(url, retry=CLUSTER_RETRY)
            assert isinstance(made, RedisCluster)
            _clients[key] = made
        return _clients[key]


def is_cluster_scheme(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def node_connection_kwargs(url: str) -> dict[str, Any]:
    """What every event-loop connection to a node of `url` shares: credentials, TLS options,
    the connect timeout; no read timeout (a blocking wait may last the idle timeout; kombu's
    health check drops a connection whose reply is overdue)."""
    options: dict[str, Any] = parse_url(node_url(url))  # type: ignore[no-untyped-call]
    options.pop("db", None)
    options.pop("host", None)
    options.pop("port", None)
    options.setdefault("socket_connect_timeout", 5.0)
    options["socket_timeout"] = None
    return options


class NodeConnections:
    """The event loop's connections of one channel: one per node it polls, and pools for
    its pub/sub client. `on_disconnect` is kombu's channel hook (the poller forgets the
    socket)."""

    def __init__(self, url: str, on_disconnect: Any) -> None:
        options = node_connection_kwargs(url)
        base = options.pop("connection_class", redis.Connection)

        class NodeConnection(base):  # type: ignore[misc, valid-type]
            def disconnect(self, *args: Any, **kwargs: Any) -> None:
                super().disconnect(*args, **kwargs)
                on_disconnect(self)

        self._class = NodeConnection
        self._options = options
        self._connections: dict[str, Any] = {}
        self._pools: list[redis.ConnectionPool] = []

    def pool(self, node: ClusterNode) -> redis.ConnectionPool:
        pool = redis.ConnectionPool(
            connection_class=self._class, host=node.host, port=node.port, **self._options
        )
        self._pools.append(pool)
        return pool

    def connection(self, node: ClusterNode) -> Any:
        """The poll connection to `node` (made on first use, kept while the channel lives)."""
        connection = self._connections.get(node.name)
        if connection is None:
            connection = self._connections[node.name] = self._class(
                host=node.host, port=node.port, **self._options
            )
        return connection

    def close(self) -> None:
        for connection in self._connections.values():
            connection.disconnect()
        self._connections.clear()
        for pool in self._pools:
            pool.disconnect()
        self._pools.clear()
