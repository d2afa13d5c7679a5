"""ElastiCache for Redis as the broker: cluster mode OFF (Celery's Redis transport issues
multi-key commands across queues, which cluster mode rejects with CROSSSLOT), TLS in transit,
encryption at rest, an AUTH token, and `noeviction` so queued messages are never dropped."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.config import ElastiCacheConfig
from infra.names import PART_OF, REDIS_PORT

PARAMETER_FAMILY = "redis7"


class ElastiCacheRedis(pulumi.ComponentResource):
    """Outputs: `broker_url` (secret), `host` (primary endpoint)."""

    broker_url: pulumi.Output[str]
    host: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: ElastiCacheConfig,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:ElastiCacheRedis", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"app.kubernetes.io/part-of": PART_OF, "stack": stack}
        # ElastiCache AUTH tokens forbid @, " and /; alphanumerics also keep the URL unescaped.
        token = random.RandomPassword(
            f"{resource_name}-auth-token", length=64, special=False, opts=child
        )
        sg = aws.ec2.SecurityGroup(
            f"{resource_name}-sg",
            description="celery-fleet Redis: 6379 from the Kubernetes nodes only",
            vpc_id=cfg.vpc_id,
            ingress=[
                {
                    # AWS allows only a-zA-Z0-9 ._-:/()#,@[]+=&;{}!$* in rule descriptions.
                    "description": "Redis from the cluster node security group",
                    "protocol": "tcp",
                    "from_port": REDIS_PORT,
                    "to_port": REDIS_PORT,
                    "security_groups": [cfg.node_security_group_id],
                }
            ],
            tags=tags,
            opts=child,
        )
        subnets = aws.elasticache.SubnetGroup(
            f"{resource_name}-subnets",
            description="celery-fleet Redis subnets",
            subnet_ids=list(cfg.subnet_ids),
            tags=tags,
            opts=child,
        )
        params = aws.elasticache.ParameterGroup(
            f"{resource_name}-params",
            family=PARAMETER_FAMILY,
            description="celery-fleet broker: never evict queued messages",
            parameters=[{"name": "maxmemory-policy", "value": "noeviction"}],
            tags=tags,
            opts=child,
        )
        failover = cfg.multi_az and cfg.num_cache_clusters >= 2
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
            auth_token=token.result,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            snapshot_retention_limit=cfg.snapshot_retention_limit,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags,
            opts=child,
        )
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
        self.register_outputs({"host": self.host, "broker_url": self.broker_url})
