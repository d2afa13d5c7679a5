"""`redis.mode: cluster` and `redis.mode: serverless` in Pulumi.<stack>.yaml: ElastiCache
with cluster mode enabled, and ElastiCache Serverless (which exists only in cluster mode).
Both give a `redisscluster://` broker URL (service.config.redis_url)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from infra.config_reader import key_error
from infra.config_redis import AlarmsConfig, AwsNetwork, ServerlessAlarmsConfig

Count = Annotated[StrictInt, Field(ge=0)]


class ElastiCacheClusterConfig(AwsNetwork):
    """Cluster mode enabled: `shards` primaries, each with `replicasPerShard` replicas; the
    broker URL names the configuration endpoint, which hands out the topology."""

    mode: Literal["cluster"]
    node_type: str = "cache.t4g.small"
    engine_version: Annotated[str, Field(pattern=r"^7(\.|$)")] = "7.1"
    # ElastiCache: 1..500 node groups, 0..5 replicas each.
    shards: Annotated[StrictInt, Field(ge=1, le=500)] = 3
    replicas_per_shard: Annotated[StrictInt, Field(ge=0, le=5)] = 1
    multi_az: StrictBool = True
    snapshot_retention_limit: Count = 1
    # A snapshot when the group is deleted, and Pulumi's `protect` on it (as in elasticache
    # mode): deleting the broker takes an explicit unprotect first.
    final_snapshot: StrictBool = True
    protect: StrictBool = True
    # Per node, as in elasticache mode (README "What each alarm means").
    alarms: AlarmsConfig = AlarmsConfig()

    @model_validator(mode="after")
    def _failover_target(self) -> ElastiCacheClusterConfig:
        if self.multi_az and self.replicas_per_shard < 1:
            raise key_error("multiAz", "needs replicasPerShard >= 1 (a replica to fail over to)")
        return self


class ElastiCacheServerlessConfig(AwsNetwork):
    """ElastiCache Serverless: no nodes to size, billed by data stored and ECPUs used; the
    usage limits cap both (a runaway backlog stops at `maxDataStorageGb`: with noeviction
    semantics, writes are refused, nothing queued is evicted)."""

    mode: Literal["serverless"]
    engine: Literal["redis", "valkey"] = "redis"
    major_engine_version: Annotated[str, Field(pattern=r"^[78]$")] = "7"
    # The ranges ElastiCache accepts (pulumi-aws ServerlessCache cache_usage_limits).
    max_data_storage_gb: Annotated[StrictInt, Field(ge=1, le=5000)] = 10
    max_ecpu_per_second: Annotated[StrictInt, Field(ge=1000, le=15_000_000)] = 5000
    snapshot_retention_limit: Count = 1
    daily_snapshot_time: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "03:00"
    # Pulumi's `protect` on the cache. pulumi-aws (7.51) offers no final snapshot for a
    # ServerlessCache, so protect is what stands between `pulumi destroy` and the queues.
    protect: StrictBool = True
    # The cache against its usage limits (README "What each alarm means").
    alarms: ServerlessAlarmsConfig = ServerlessAlarmsConfig()

    @model_validator(mode="after")
    def _engine_version(self) -> ElastiCacheServerlessConfig:
        if self.engine == "redis" and self.major_engine_version != "7":
            raise key_error("majorEngineVersion", "Redis OSS serverless is version 7")
        return self
