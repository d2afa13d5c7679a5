"""`redis.mode: serverless`: ElastiCache Serverless (Redis OSS or Valkey). It exists only in
cluster mode and always encrypts in transit and at rest; usage limits cap storage and ECPUs.
It has no AUTH token: access goes through RBAC, a user group holding a disabled `default`
user (AWS requires one named so) and the fleet's own user with a generated password. The
cache is Pulumi-`protect`ed (on by default); alarms: infra/redis_serverless_alarms.py."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.names import REDIS_PORT
from infra.redis_aws_parts import (
    cluster_broker_url,
    credential,
    node_only_security_group,
    tags_for,
)
from infra.redis_cluster_config import ElastiCacheServerlessConfig

# Serverless listens on 6379 (primary endpoint) and 6380 (reader endpoint).
SERVERLESS_PORTS = (REDIS_PORT, REDIS_PORT + 1)
FLEET_USER = "celery-fleet"
# Every key and channel, every command: the broker, the DLQ and the results share the cache.
FLEET_ACCESS = "on ~* &* +@all"
DISABLED_ACCESS = "off -@all"
# Prefix of the user, user group and cache ids (unique per account and region).
PART_OF_ID = "celery-fleet"


class ServerlessRedis(pulumi.ComponentResource):
    """Outputs: `broker_url` (secret), `host` (the serverless endpoint)."""

    broker_url: pulumi.Output[str]
    host: pulumi.Output[str]
    cache_name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: ElastiCacheServerlessConfig,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:ServerlessRedis", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = tags_for(stack)
        sg = node_only_security_group(
            f"{resource_name}-sg", cfg, SERVERLESS_PORTS, "Redis serverless", tags, child
        )
        password = credential(f"{resource_name}-password", child)
        default_password = credential(f"{resource_name}-default-password", child)
        default_user = aws.elasticache.User(
            f"{resource_name}-default-user",
            user_id=f"{PART_OF_ID}-{stack}-default",
            user_name="default",
            engine=cfg.engine,
            access_string=DISABLED_ACCESS,
            authentication_mode={"type": "password", "passwords": [default_password.result]},
            tags=tags,
            opts=child,
        )
        fleet_user = aws.elasticache.User(
            f"{resource_name}-user",
            user_id=f"{PART_OF_ID}-{stack}",
            user_name=FLEET_USER,
            engine=cfg.engine,
            access_string=FLEET_ACCESS,
            authentication_mode={"type": "password", "passwords": [password.result]},
            tags=tags,
            opts=child,
        )
        users = aws.elasticache.UserGroup(
            f"{resource_name}-users",
            user_group_id=f"{PART_OF_ID}-{stack}",
            engine=cfg.engine,
            user_ids=[default_user.user_id, fleet_user.user_id],
            tags=tags,
            opts=child,
        )
        cache = aws.elasticache.ServerlessCache(
            f"{resource_name}-cache",
            name=f"{PART_OF_ID}-{stack}",
            description=f"celery-fleet broker, serverless ({stack})",
            engine=cfg.engine,
            major_engine_version=cfg.major_engine_version,
            cache_usage_limits={
                "data_storage": {"maximum": cfg.max_data_storage_gb, "unit": "GB"},
                "ecpu_per_seconds": [{"maximum": cfg.max_ecpu_per_second}],
            },
            security_group_ids=[sg.id],
            subnet_ids=list(cfg.subnet_ids),
            user_group_id=users.user_group_id,
            snapshot_retention_limit=cfg.snapshot_retention_limit,
            daily_snapshot_time=cfg.daily_snapshot_time,
            tags=tags,
            # The broker holds every queued task: deleting it takes an explicit unprotect.
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.protect),
        )
        self.cache_name = cache.name
        # The endpoint blocks are dict subclasses: item access works on them as on mocks.
        self.host = cache.endpoints.apply(lambda endpoints: str(endpoints[0]["address"]))
        self.broker_url = cluster_broker_url(FLEET_USER, password.result, self.host, REDIS_PORT)
        self.register_outputs(
            {"host": self.host, "broker_url": self.broker_url, "cache_name": self.cache_name}
        )
