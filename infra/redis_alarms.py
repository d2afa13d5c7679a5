"""CloudWatch alarms on the ElastiCache broker in each `redis.mode`, optionally to one SNS
topic (`celery-fleet-<stack>-redis-alarms`), each with the operator action in its
description (README "What each alarm means").

Node-based modes (elasticache, cluster), per node:

- memory: DatabaseMemoryUsagePercentage. With `noeviction` a full Redis refuses writes:
  publishes, acks and DLQ captures fail. The one that matters most.
- engine CPU: EngineCPUUtilization (Redis' single thread), the node's real ceiling.
- connections: CurrConnections, a connection leak or a pool scaled past the plan.
- replication lag: ReplicationLag (replicas only; a primary reports none, which counts as
  fine): a failover now would lose the lagging writes.
- evictions: any eviction means the parameter group lost `noeviction`: messages are lost.

The nodes are `<group id>-001`, `-002`... (elasticache) and `<group id>-<shard 0001..>-<node
001..>` (cluster mode; node 001 of each shard starts as its primary), ElastiCache's
CacheClusterId of each member. Serverless: infra/redis_serverless_alarms.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.cloudwatch_alarms import AlarmSpec, AlarmWindow, metric_alarm
from infra.config import ElastiCacheConfig
from infra.config_redis import AlarmRouting, AlarmsConfig
from infra.redis_aws_parts import tags_for
from infra.redis_cluster_config import ElastiCacheClusterConfig

NAMESPACE = "AWS/ElastiCache"


@dataclass(frozen=True)
class AlarmTarget:
    """One thing alarmed on: `suffix` ends the alarms' resource names, `ident` their
    CloudWatch names; `dimensions` select its metrics; `replica` admits replicas_only specs."""

    suffix: str
    ident: pulumi.Output[str]
    dimensions: dict[str, pulumi.Input[str]]
    replica: bool = False


def connections_alarm(alarms: AlarmRouting) -> AlarmSpec:
    """Client connections above the plan: the same alarm in every Redis mode."""
    return AlarmSpec(
        "connections",
        "CurrConnections",
        alarms.connections,
        "Maximum",
        f"More than {alarms.connections} client connections: a leak or pools scaled past "
        "the plan. Check worker replicas and per-process pools.",
    )


def node_alarm_specs(alarms: AlarmsConfig) -> list[AlarmSpec]:
    return [
        AlarmSpec(
            "memory",
            "DatabaseMemoryUsagePercentage",
            alarms.memory_percent,
            "Maximum",
            f"Broker memory above {alarms.memory_percent:g}%: with noeviction a full Redis "
            "refuses writes. Drain backlogs and the DLQ, or scale the node type up.",
        ),
        AlarmSpec(
            "engine-cpu",
            "EngineCPUUtilization",
            alarms.engine_cpu_percent,
            "Average",
            f"Redis engine thread above {alarms.engine_cpu_percent:g}%: commands queue up. "
            "Check commands per task and scrape rates; scale the node type up.",
        ),
        connections_alarm(alarms),
        AlarmSpec(
            "replication-lag",
            "ReplicationLag",
            alarms.replication_lag_seconds,
            "Maximum",
            f"A replica lags more than {alarms.replication_lag_seconds:g}s: a failover now "
            "would lose recent writes. Check network and primary load.",
            replicas_only=True,
        ),
        AlarmSpec(
            "evictions",
            "Evictions",
            0,
            "Sum",
            "Redis evicted keys: queued messages are being lost. The parameter group must set "
            "maxmemory-policy noeviction; check it and the node's memory at once.",
        ),
    ]


def _node(ident: pulumi.Output[str], suffix: str, replica: bool) -> AlarmTarget:
    return AlarmTarget(suffix, ident, {"CacheClusterId": ident}, replica)


def member_cluster_id(replication_group_id: pulumi.Input[str], index: int) -> pulumi.Output[str]:
    """ElastiCache names the nodes of a cluster-mode-off group `<group id>-001`, `-002`..."""
    return pulumi.Output.concat(replication_group_id, f"-{index:03d}")


def replication_group_nodes(group_id: pulumi.Input[str], nodes: int) -> list[AlarmTarget]:
    """Cluster mode off: node 001 starts as the primary, the others are replicas."""
    return [_node(member_cluster_id(group_id, i), f"{i:03d}", i >= 2) for i in range(1, nodes + 1)]


def cluster_mode_nodes(
    group_id: pulumi.Input[str], shards: int, replicas_per_shard: int
) -> list[AlarmTarget]:
    """Cluster mode on: `<group id>-0001-001` is shard 1's first node (its primary at
    creation), `-0001-002` its first replica, and so on for every shard."""
    return [
        _node(
            pulumi.Output.concat(group_id, f"-{shard:04d}-{node:03d}"),
            f"{shard:04d}-{node:03d}",
            node >= 2,
        )
        for shard in range(1, shards + 1)
        for node in range(1, replicas_per_shard + 2)
    ]


class ElastiCacheAlarms(pulumi.ComponentResource):
    """Each spec on each target that admits it. Output: `topic_arn` (the SNS topic the alarms
    notify, None without one)."""

    topic_arn: pulumi.Output[str] | None

    def __init__(
        self,
        resource_name: str,
        alarms: AlarmRouting,
        stack: str,
        specs: Sequence[AlarmSpec],
        targets: Sequence[AlarmTarget],
        kms_key_arn: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:ElastiCacheAlarms", resource_name, None, opts)
        self.topic_arn = None
        if not alarms.enabled:
            self.register_outputs({})
            return
        tags = tags_for(stack)
        child = pulumi.ResourceOptions(parent=self)
        if alarms.create_sns_topic:
            topic = aws.sns.Topic(
                f"{resource_name}-topic",
                name=f"celery-fleet-{stack}-redis-alarms",
                kms_master_key_id=kms_key_arn or "alias/aws/sns",
                tags=tags,
                opts=child,
            )
            self.topic_arn = topic.arn
        elif alarms.sns_topic_arn:
            self.topic_arn = pulumi.Output.from_input(alarms.sns_topic_arn)
        actions = [self.topic_arn] if self.topic_arn is not None else []
        minutes = alarms.evaluation_minutes
        window = AlarmWindow(period=60, evaluation_periods=minutes, datapoints_to_alarm=minutes)
        for spec in specs:
            for target in targets:
                if spec.replicas_only and not target.replica:
                    continue
                metric_alarm(
                    f"{resource_name}-{spec.key}-{target.suffix}",
                    spec,
                    name=pulumi.Output.concat(
                        f"celery-fleet-{stack}-redis-{spec.key}-", target.ident
                    ),
                    namespace=NAMESPACE,
                    dimensions=target.dimensions,
                    window=window,
                    actions=actions,
                    tags=tags,
                    opts=child,
                )
        self.register_outputs({"topic_arn": self.topic_arn})


def replication_group_alarms(
    cfg: ElastiCacheConfig, stack: str, group_id: pulumi.Input[str]
) -> ElastiCacheAlarms:
    """`redis.mode: elasticache`: every node of the replication group."""
    targets = replication_group_nodes(group_id, cfg.num_cache_clusters)
    specs = node_alarm_specs(cfg.alarms)
    return ElastiCacheAlarms("redis-alarms", cfg.alarms, stack, specs, targets, cfg.kms_key_arn)


def cluster_mode_alarms(
    cfg: ElastiCacheClusterConfig, stack: str, group_id: pulumi.Input[str]
) -> ElastiCacheAlarms:
    """`redis.mode: cluster`: every node of every shard."""
    targets = cluster_mode_nodes(group_id, cfg.shards, cfg.replicas_per_shard)
    return ElastiCacheAlarms(
        "redis-alarms", cfg.alarms, stack, node_alarm_specs(cfg.alarms), targets
    )
