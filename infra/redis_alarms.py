"""CloudWatch alarms on the ElastiCache broker's nodes, optionally to an SNS topic.

Per node (`<replication group>-001`, `-002`, ...: the member clusters of a cluster-mode-off
group), each with the operator action in its description (README "What each alarm means"):

- memory: DatabaseMemoryUsagePercentage. With `noeviction` a full Redis refuses writes:
  publishes, acks and DLQ captures fail. The one that matters most.
- engine CPU: EngineCPUUtilization (Redis' single thread), the node's real ceiling.
- connections: CurrConnections, a connection leak or a pool scaled past the plan.
- replication lag: ReplicationLag (replicas only; a primary reports none, which counts as
  fine): a failover now would lose the lagging writes.
- evictions: any eviction means the parameter group lost `noeviction`: messages are lost."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import ElastiCacheConfig
from infra.names import PART_OF

NAMESPACE = "AWS/ElastiCache"


@dataclass(frozen=True)
class AlarmSpec:
    key: str
    metric: str
    threshold: float
    statistic: str
    description: str
    replicas_only: bool = False


def alarm_specs(cfg: ElastiCacheConfig) -> list[AlarmSpec]:
    alarms = cfg.alarms
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
        AlarmSpec(
            "connections",
            "CurrConnections",
            alarms.connections,
            "Maximum",
            f"More than {alarms.connections} client connections: a leak or pools scaled past "
            "the plan. Check worker replicas and per-process pools.",
        ),
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


def member_cluster_id(replication_group_id: pulumi.Input[str], index: int) -> pulumi.Output[str]:
    """ElastiCache names the nodes of a cluster-mode-off group `<group id>-001`, `-002`..."""
    return pulumi.Output.concat(replication_group_id, f"-{index:03d}")


class ElastiCacheAlarms(pulumi.ComponentResource):
    """Output: `topic_arn` (the SNS topic the alarms notify, None without one)."""

    topic_arn: pulumi.Output[str] | None

    def __init__(
        self,
        resource_name: str,
        cfg: ElastiCacheConfig,
        stack: str,
        replication_group_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:ElastiCacheAlarms", resource_name, None, opts)
        self.topic_arn = None
        if not cfg.alarms.enabled:
            self.register_outputs({})
            return
        tags = {"app.kubernetes.io/part-of": PART_OF, "stack": stack}
        child = pulumi.ResourceOptions(parent=self)
        if cfg.alarms.create_sns_topic:
            topic = aws.sns.Topic(
                f"{resource_name}-topic",
                name=f"celery-fleet-{stack}-redis-alarms",
                kms_master_key_id=cfg.kms_key_arn or "alias/aws/sns",
                tags=tags,
                opts=child,
            )
            self.topic_arn = topic.arn
        elif cfg.alarms.sns_topic_arn:
            self.topic_arn = pulumi.Output.from_input(cfg.alarms.sns_topic_arn)
        actions = [self.topic_arn] if self.topic_arn is not None else []
        minutes = cfg.alarms.evaluation_minutes
        for spec in alarm_specs(cfg):
            first = 2 if spec.replicas_only else 1
            for index in range(first, cfg.num_cache_clusters + 1):
                aws.cloudwatch.MetricAlarm(
                    f"{resource_name}-{spec.key}-{index:03d}",
                    name=pulumi.Output.concat(
                        f"celery-fleet-{stack}-redis-{spec.key}-",
                        member_cluster_id(replication_group_id, index),
                    ),
                    alarm_description=spec.description,
                    namespace=NAMESPACE,
                    metric_name=spec.metric,
                    dimensions={"CacheClusterId": member_cluster_id(replication_group_id, index)},
                    statistic=spec.statistic,
                    period=60,
                    evaluation_periods=minutes,
                    datapoints_to_alarm=minutes,
                    threshold=spec.threshold,
                    comparison_operator="GreaterThanThreshold",
                    # A node that reports nothing (a primary's replication lag, a node being
                    # replaced) is not an alarm; memory and evictions say so loudly enough.
                    treat_missing_data="notBreaching",
                    alarm_actions=actions,
                    ok_actions=actions,
                    tags=tags,
                    opts=child,
                )
        self.register_outputs({"topic_arn": self.topic_arn})
