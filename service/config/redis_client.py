"""The one Redis client factory for everything that is not the broker transport: the DLQ,
the exporter, the rate limiter, task bookkeeping. A cluster URL (`rediscluster://`,
`redisscluster://`; see service.config.redis_url) gives redis-py's `RedisCluster`, which
follows MOVED/ASK and re-reads the topology after a failover; any other URL a `Redis`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster
from redis.retry import Retry

from service.config.redis_url import is_cluster_url, node_url
from service.config.settings import get_settings

# A command waits this long for its reply. It must outlast a CLIENT PAUSE: the in-cluster
# Redis pauses writes in its preStop hook (infra.redis_incluster.PRE_STOP_PAUSE_WRITES, 10 s)
# and an operator's pause may be longer; a timeout inside a pause would fail the command
# (and, before service.config.redis_faults, dead-letter the task). redis-py then retries a timed
# out command 3 times with backoff, so a pause up to ~2 minutes passes unnoticed. A dead
# Redis is found faster by the connect timeout and TCP resets.
SOCKET_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0

# What callers hold: both have the commands, pipelines and scripts the service uses.
RedisClient: TypeAlias = redis.Redis | RedisCluster


def connect(
    url: str,
    *,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
    socket_connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    retry: Retry | None = None,
    client_name: str | None = None,
) -> RedisClient:
    """A new client for `url` (the caller owns and closes it)."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
    }
    if client_name is not None:
        options["client_name"] = client_name
    if is_cluster_url(url):
        # RedisCluster takes `retry` for the cluster-level retries (MOVED, failover); it
        # refuses it as a per-connection keyword.
        return RedisCluster.from_url(node_url(url), retry=retry, **options)
    if retry is not None:
        options["retry"] = retry
    return redis.Redis.from_url(url, **options)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


@lru_cache(maxsize=8)
def redis_from_url(url: str) -> RedisClient:
    # One pool per URL and process; forked pool children get their own on first use
    # because redis-py reconnects when it sees a different pid.
    return connect(url)


def broker_redis() -> RedisClient:
    return redis_from_url(get_settings().broker_url.get_secret_value())


def dlq_redis() -> RedisClient:
    return redis_from_url(get_settings().dlq_redis_url)


def pipeline_eval(pipe: Any, script: str, keys: list[str], args: list[Any]) -> None:
    """Queue one EVAL on a pipeline of either client. redis-py's cluster pipeline has no
    eval()/evalsha() (they raise); a raw EVAL is routed by its keys like any command."""
    pipe.execute_command("EVAL", script, len(keys), *keys, *args)
