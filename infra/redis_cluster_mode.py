"""`redis.mode: cluster`: an ElastiCache replication group with cluster mode enabled (shards,
replicas per shard), the cluster-on parameter group with `noeviction`, TLS, encryption at
rest and an AUTH token; a final snapshot on deletion and Pulumi `protect` (both on by
default). The broker URL names the configuration endpoint (redisscluster://), from which
redis-py's RedisCluster learns every shard. Alarms on every node: infra/redis_alarms.py."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.names import REDIS_PORT
from infra.redis_aws_parts import (
    cluster_broker_url,
    credential,
    node_only_security_group,
    noeviction_parameter_group,
    subnet_group,
    tags_for,
)
from infra.redis_cluster_config import ElastiCacheClusterConfig

# Cluster mode needs a parameter group with cluster-enabled yes (AWS: the default one is
# default.redis7.cluster.on); ours adds noeviction so queued messages are never dropped.
CLUSTER_ENABLED = ("cluster-enabled", "yes")


class ElastiCacheClusterRedis(pulumi.ComponentResource):
    """Outputs: `broker_url` (secret), `host` (the configuration endpoint)."""

    broker_url: pulumi.Output[str]
    host: pulumi.Output[str]
    replication_group_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: ElastiCacheClusterConfig,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:ElastiCacheClusterRedis", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = tags_for(stack)
        token = credential(f"{resource_name}-auth-token", child)
        sg = node_only_security_group(
            f"{resource_name}-sg", cfg, (REDIS_PORT, REDIS_PORT), "Redis", tags, child
        )
        subnets = subnet_group(f"{resource_name}-subnets", cfg, tags, child)
        params = noeviction_parameter_group(
            f"{resource_name}-params",
            "celery-fleet broker, cluster mode: never evict queued messages",
            tags,
            child,
            extra=(CLUSTER_ENABLED,),
        )
        # ElastiCache requires automatic failover in cluster mode; Multi-AZ needs replicas.
        group = aws.elasticache.ReplicationGroup(
            f"{resource_name}-rg",
            description=f"celery-fleet broker, cluster mode ({stack})",
            engine="redis",
            engine_version=cfg.engine_version,
            node_type=cfg.node_type,
            cluster_mode="enabled",
            num_node_groups=cfg.shards,
            replicas_per_node_group=cfg.replicas_per_shard,
            port=REDIS_PORT,
            parameter_group_name=params.name,
            subnet_group_name=subnets.name,
            security_group_ids=[sg.id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=token.result,
            automatic_failover_enabled=True,
            multi_az_enabled=cfg.multi_az,
            snapshot_retention_limit=cfg.snapshot_retention_limit,
            final_snapshot_identifier=(
                f"celery-fleet-{stack}-final" if cfg.final_snapshot else None
            ),
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags,
            # The broker holds every queued task: deleting it takes an explicit unprotect.
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.protect),
        )
        self.replication_group_id = group.id
        self.host = group.configuration_endpoint_address
        # AUTH token without RBAC: the user part of the URL stays empty.
        self.broker_url = cluster_broker_url("", token.result, self.host, REDIS_PORT)
        self.register_outputs(
            {
                "host": self.host,
                "broker_url": self.broker_url,
                "replication_group_id": self.replication_group_id,
            }
        )
