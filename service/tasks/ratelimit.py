"""A rate limit shared by every worker in the cluster (Celery's `rate_limit` is per worker).

Sliding-window log in one Lua script, so check-and-record is atomic across workers. Only
granted calls are recorded (a rejected attempt does not eat budget), and members are unique
sequence numbers, so two grants in the same microsecond never overwrite each other.

Both keys of a limit carry the hash tag `{<name>}`, so the script touches one slot and runs
on Redis Cluster as on one Redis (each limit lives on one shard)."""

from __future__ import annotations

from dataclasses import dataclass

from service.config.redis_client import RedisClient

_ACQUIRE = """
local key = KEYS[1]
local seq_key = KEYS[2]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_us - window_us)
local used = redis.call('ZCARD', key)
if used < limit then
  local seq = redis.call('INCR', seq_key)
  redis.call('ZADD', key, now_us, seq)
  local ttl_ms = math.ceil(window_us / 1000) + 1000
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('PEXPIRE', seq_key, ttl_ms)
  return {1, 0, now_us}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local wait_us = tonumber(oldest[2]) + window_us - now_us
return {0, wait_us, now_us}
"""


def limit_keys(name: str) -> list[str]:
    """The window and the sequence counter of limit `name`, in one slot (`{name}`)."""
    return [f"fleet:ratelimit:{{{name}}}", f"fleet:ratelimit:{{{name}}}:seq"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a slot frees up; 0 when allowed
    # Redis server time of the decision (epoch seconds): a grant's exact place in the
    # window, which callers can record without their own scheduling delay in it.
    at: float


class ClusterRateLimiter:
    """At most `limit` grants in any `window_seconds`, counted in Redis by every worker.

    Uses the Redis server clock, so worker clock skew cannot widen the window."""

    def __init__(self, client: RedisClient, name: str, limit: int, window_seconds: float) -> None:
        if limit < 1:
            raise ValueError(f"rate limit {name!r}: limit must be >= 1, got {limit}")
        if window_seconds <= 0:
            raise ValueError(f"rate limit {name!r}: window must be > 0, got {window_seconds}")
        self.name = name
        self.limit = limit
        self.window_us = int(window_seconds * 1_000_000)
        self._keys = limit_keys(name)
        self._script = client.register_script(_ACQUIRE)

    def try_acquire(self) -> Decision:
        allowed, wait_us, now_us = self._script(keys=self._keys, args=[self.limit, self.window_us])
        at = int(now_us) / 1_000_000
        if int(allowed) == 1:
            return Decision(True, 0.0, at)
        return Decision(False, max(int(wait_us), 1000) / 1_000_000, at)
