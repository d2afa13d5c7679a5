"""CloudWatch alarms on an ElastiCache Serverless broker (`redis.mode: serverless`). It has
no nodes: AWS publishes its metrics in AWS/ElastiCache under the single dimension
`clusterId` = the cache's name (AWS "Serverless metrics and events for Valkey and Redis
OSS": BytesUsedForCache, ElastiCacheProcessingUnits, CurrConnections, ThrottledCmds,
Evictions). Thresholds come from the cache's own usage limits:

- storage: BytesUsedForCache (Maximum) above `storagePercent` of `maxDataStorageGb`. At the
  limit the cache refuses writes: publishes, acks and DLQ captures fail.
- ECPUs: ElastiCacheProcessingUnits summed per minute above `ecpuPercent` of
  `maxEcpuPerSecond` x 60. At the limit commands are throttled.
- throttled commands: ThrottledCmds > 0, the cache already refuses work (the limit, or load
  growing faster than ElastiCache scales).
- connections: CurrConnections above `connections`.
- evictions: Evictions > 0. Serverless evicts keys with a TTL at its storage limit: stored
  results and the like, never a queued message (they have none); still a sign the cache is
  at its limit."""

from __future__ import annotations

import pulumi

from infra.cloudwatch_alarms import AlarmSpec
from infra.redis_alarms import AlarmTarget, ElastiCacheAlarms, connections_alarm
from infra.redis_cluster_config import ElastiCacheServerlessConfig

# The limit's "GB" taken as 10^9 bytes: were it GiB, the alarm fires a little early, never late.
GB = 10**9


def serverless_alarm_specs(cfg: ElastiCacheServerlessConfig) -> list[AlarmSpec]:
    alarms = cfg.alarms
    storage_bytes = cfg.max_data_storage_gb * GB * alarms.storage_percent / 100
    ecpus_per_minute = cfg.max_ecpu_per_second * 60 * alarms.ecpu_percent / 100
    return [
        AlarmSpec(
            "storage",
            "BytesUsedForCache",
            storage_bytes,
            "Maximum",
            f"Serverless data above {alarms.storage_percent:g}% of maxDataStorageGb "
            f"({cfg.max_data_storage_gb} GB): at the limit writes are refused. Drain backlogs "
            "and the DLQ, or raise maxDataStorageGb.",
        ),
        AlarmSpec(
            "ecpu",
            "ElastiCacheProcessingUnits",
            ecpus_per_minute,
            "Sum",
            f"ECPUs above {alarms.ecpu_percent:g}% of maxEcpuPerSecond "
            f"({cfg.max_ecpu_per_second}/s): at the limit commands are throttled. Check "
            "commands per task and scrape rates, or raise maxEcpuPerSecond.",
        ),
        AlarmSpec(
            "throttled",
            "ThrottledCmds",
            0,
            "Sum",
            "The serverless cache throttled commands: publishes and pops are delayed or fail. "
            "Raise maxEcpuPerSecond if the ECPU alarm fires too; else load grew faster than "
            "ElastiCache scales (ramp it up).",
        ),
        connections_alarm(alarms),
        AlarmSpec(
            "evictions",
            "Evictions",
            0,
            "Sum",
            "The serverless cache evicted keys with a TTL (stored results): it is at "
            "maxDataStorageGb. Drain backlogs and the DLQ, or raise the limit.",
        ),
    ]


def serverless_target(cache_name: pulumi.Input[str]) -> AlarmTarget:
    name = pulumi.Output.from_input(cache_name)
    return AlarmTarget("cache", name, {"clusterId": name})


def serverless_alarms(
    cfg: ElastiCacheServerlessConfig, stack: str, cache_name: pulumi.Input[str]
) -> ElastiCacheAlarms:
    """`redis.mode: serverless`: the cache against its usage limits."""
    specs = serverless_alarm_specs(cfg)
    return ElastiCacheAlarms(
        "redis-alarms", cfg.alarms, stack, specs, [serverless_target(cache_name)]
    )
