"""Redis clients for the service's own keys (DLQ, rate limits, task bookkeeping)."""

from __future__ import annotations

from functools import lru_cache

import redis

from service.config.settings import get_settings

# A command waits this long for its reply. It must outlast a CLIENT PAUSE: the in-cluster
# Redis pauses writes in its preStop hook (infra.redis_incluster.PRE_STOP_PAUSE_WRITES, 10 s)
# and an operator's pause may be longer; a timeout inside a pause would fail the command
# (and, before service.redis_faults, dead-letter the task). redis-py then retries a timed
# out command 3 times with backoff, so a pause up to ~2 minutes passes unnoticed. A dead
# Redis is found faster by the connect timeout and TCP resets.
SOCKET_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0


@lru_cache(maxsize=8)
def redis_from_url(url: str) -> redis.Redis:
    # One pool per URL and process; forked pool children get their own on first use
    # because redis-py reconnects when it sees a different pid.
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
    )


def broker_redis() -> redis.Redis:
    return redis_from_url(get_settings().broker_url.get_secret_value())


def dlq_redis() -> redis.Redis:
    return redis_from_url(get_settings().dlq_redis_url)
