"""ElastiCache for Redis as the broker: cluster mode OFF (Celery's Redis transport issues
multi-key commands across queues, which cluster mode rejects with CROSSSLOT), TLS in transit,
encryption at rest (optionally with the stack's KMS key), an AUTH token, and `noeviction` so
queued messages are never dropped.

Day 2: the AUTH token rotates by changing `redis.authTokenRotation` (a new RandomPassword,
applied with ElastiCache's ROTATE strategy: old and new tokens both work until a later SET);
slow and engine logs go to CloudWatch Logs; maintenance and snapshot windows are the
stack's; a final snapshot is taken on deletion and the group is `protect`ed (both on by
default). Alarms: infra/redis_alarms.py."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.config import ElastiCacheConfig
from infra.names import REDIS_PORT
from infra.redis_aws_parts import (
    node_only_security_group,
    noeviction_parameter_group,
    subnet_group,
    tags_for,
)

LOG_TYPES = ("slow-log", "engine-log")


class ElastiCacheRedis(pulumi.ComponentResource):
    """Outputs: `broker_url` (secret), `host` (primary endpoint)."""

    broker_url: pulumi.Output[str]
    host: pulumi.Output[str]
    replication_group_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: ElastiCacheConfig,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:ElastiCacheRedis", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = tags_for(stack)
        # ElastiCache AUTH tokens forbid @, " and /; alphanumerics also keep the URL unescaped.
        # A new `authTokenRotation` value is a new keeper: a new token (the only input that
        # replaces the password; its length and alphabet never change).
        token = random.RandomPassword(
            f"{resource_name}-auth-token",
            length=64,
            special=False,
            keepers={"rotation": cfg.auth_token_rotation},
            opts=child,
        )
        sg = node_only_security_group(
            f"{resource_name}-sg", cfg, (REDIS_PORT, REDIS_PORT), "Redis", tags, child
        )
        subnets = subnet_group(f"{resource_name}-subnets", cfg, tags, child)
        params = noeviction_parameter_group(
            f"{resource_name}-params",
            "celery-fleet broker: never evict queued messages",
            tags,
            child,
        )
        failover = cfg.multi_az and cfg.num_cache_clusters >= 2
        logs = self._log_delivery(resource_name, cfg, stack, tags) if cfg.log_delivery else []
        group = aws.elasticache.ReplicationGroup(
            f"{resource_name}-rg",
            description=f"celery-fleet broker ({stack})",
            engine="redis",
            engine_version=cfg.engine_version,
            node_type=cfg.node_type,
            num_cache_clusters=cfg.num_cache_clusters,
            cluster_mode="disabled",
            port=REDIS_PORT,
            parameter_group_name=params.name,
            subnet_group_name=subnets.name,
            security_group_ids=[sg.id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            kms_key_id=cfg.kms_key_arn,
            auth_token=token.result,
            # ROTATE: the new token is accepted beside the old one until the next SET, so
            # pods still on the old one keep working while they roll (README runbook).
            auth_token_update_strategy=cfg.auth_token_update_strategy,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            snapshot_retention_limit=cfg.snapshot_retention_limit,
            snapshot_window=cfg.snapshot_window,
            maintenance_window=cfg.maintenance_window,
            final_snapshot_identifier=(
                f"celery-fleet-{stack}-final" if cfg.final_snapshot else None
            ),
            log_delivery_configurations=logs,
            auto_minor_version_upgrade=True,
            apply_immediately=cfg.apply_immediately,
            tags=tags,
            # The broker holds every queued task: deleting it takes an explicit unprotect.
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.protect),
        )
        self.replication_group_id = group.id
        self.host = group.primary_endpoint_address
        # kombu/celery refuse a rediss:// result backend without ssl_cert_reqs; the
        # ElastiCache certificate chains to Amazon's public CA, so verify it.
        self.broker_url = pulumi.Output.secret(
            pulumi.Output.concat(
                "rediss://:",
                token.result,
                "@",
                self.host,
                f":{REDIS_PORT}/0?ssl_cert_reqs=required",
            )
        )
        self.register_outputs(
            {
                "host": self.host,
                "broker_url": self.broker_url,
                "replication_group_id": self.replication_group_id,
            }
        )

    def _log_delivery(
        self, resource_name: str, cfg: ElastiCacheConfig, stack: str, tags: dict[str, str]
    ) -> list[aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgsDict]:
        """A CloudWatch log group per log type (slow log, engine log), JSON lines."""
        configurations: list[aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgsDict] = []
        for log_type in LOG_TYPES:
            group = aws.cloudwatch.LogGroup(
                f"{resource_name}-{log_type}",
                name=f"/celery-fleet/{stack}/redis/{log_type}",
                retention_in_days=cfg.log_retention_days,
                kms_key_id=cfg.kms_key_arn,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            configurations.append(
                {
                    "destination": group.name,
                    "destination_type": "cloudwatch-logs",
                    "log_format": "json",
                    "log_type": log_type,
                }
            )
        return configurations
