"""Redis clients for the service's own keys (DLQ, rate limits, task bookkeeping)."""

from __future__ import annotations

from functools import lru_cache

import redis

from service.config.settings import get_settings


@lru_cache(maxsize=8)
def redis_from_url(url: str) -> redis.Redis:
    # One pool per URL and process; forked pool children get their own on first use
    # because redis-py reconnects when it sees a different pid.
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def broker_redis() -> redis.Redis:
    return redis_from_url(get_settings().broker_url.get_secret_value())


def dlq_redis() -> redis.Redis:
    return redis_from_url(get_settings().dlq_redis_url)
