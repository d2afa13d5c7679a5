"""`results` in Pulumi.<stack>.yaml: where task results that callers read are stored.

- `redis` (the default): the broker's Redis, as before; nothing is created.
- `postgres`: Celery's database backend on PostgreSQL; `provider: in-cluster` (a
  StatefulSet, for dev) or `provider: rds` (an encrypted RDS PostgreSQL instance in the VPC,
  for production; network keys default to the ElastiCache broker's).
- `external`: a PostgreSQL (or Redis) URL you run yourself, read by every fleet pod from a
  Kubernetes Secret you create (`secretName`/`secretKey`); the pods validate it at start.

The DLQ, the exporter and the broker stay on Redis in every mode."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from infra.config_reader import DNS_LABEL, IMAGE, STORAGE, ConfigModel, key_error
from infra.config_sections import Count, Positive, Resources
from infra.results_names import POSTGRES_SUPERUSER

# The major version decides the RDS parameter group family (`postgres16`).
PG_MAJOR = Annotated[str, Field(pattern=r"^1[4-7](\.[0-9]+)?$")]


class RedisResults(ConfigModel):
    mode: Literal["redis"] = "redis"


class ExternalResults(ConfigModel):
    mode: Literal["external"]
    secret_name: Annotated[str, Field(pattern=DNS_LABEL.pattern)]
    secret_key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")] = "url"


class PostgresResults(ConfigModel):
    mode: Literal["postgres"]
    provider: Literal["in-cluster", "rds"] = "in-cluster"
    database: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "celery_results"
    username: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "fleet"
    # in-cluster
    image: Annotated[str, Field(pattern=IMAGE.pattern)] = "postgres:16.4"
    storage_size: Annotated[str, Field(pattern=STORAGE.pattern)] = "10Gi"
    storage_class: str | None = None
    resources: Resources = Resources("250m", "512Mi", "1Gi")
    # rds (vpcId, subnetIds, nodeSecurityGroupId default to the ElastiCache broker's)
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] | None = None
    node_security_group_id: str | None = None
    engine_version: PG_MAJOR = "16"
    instance_class: str = "db.t4g.medium"
    allocated_storage_gb: Annotated[StrictInt, Field(ge=20, le=65536)] = 20
    max_allocated_storage_gb: Annotated[StrictInt, Field(ge=20, le=65536)] = 200
    multi_az: StrictBool = False
    deletion_protection: StrictBool = True
    backup_retention_days: Annotated[StrictInt, Field(ge=1, le=35)] = 7
    # SNS topic ARNs the CloudWatch alarms notify (none: the alarms only show in the console).
    alarm_actions: tuple[str, ...] = ()
    max_connections_alarm: Positive = 400
    free_storage_alarm_gb: Count = 5

    @model_validator(mode="before")
    @classmethod
    def _partial_resources(cls, data: Any) -> Any:
        if isinstance(data, dict) and "resources" in data:
            default = cls.model_fields["resources"].default
            return {**data, "resources": default.merged(data["resources"])}
        return data

    @model_validator(mode="after")
    def _storage_bounds(self) -> PostgresResults:
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise key_error("maxAllocatedStorageGb", "must be >= allocatedStorageGb")
        return self

    @model_validator(mode="after")
    def _not_the_superuser(self) -> PostgresResults:
        # In-cluster, `postgres` is the server's bootstrap superuser, not the fleet's role.
        if self.provider == "in-cluster" and self.username == POSTGRES_SUPERUSER:
            raise key_error("username", f"{POSTGRES_SUPERUSER} is the in-cluster superuser")
        return self

    @property
    def major_version(self) -> str:
        return self.engine_version.split(".")[0]


ResultsConfig = RedisResults | PostgresResults | ExternalResults


def rds_network(results: PostgresResults, redis: Any) -> tuple[str, tuple[str, ...], str]:
    """(vpc id, subnet ids, node security group id) of an RDS results database: its own keys,
    else the ElastiCache broker's (the same VPC and nodes reach both)."""
    vpc = results.vpc_id or getattr(redis, "vpc_id", None)
    subnets = results.subnet_ids or getattr(redis, "subnet_ids", None)
    group = results.node_security_group_id or getattr(redis, "node_security_group_id", None)
    if not vpc or not subnets or not group:
        raise key_error(
            "results.provider",
            "rds needs vpcId, subnetIds and nodeSecurityGroupId (in results, or from "
            "redis.mode elasticache)",
        )
    return vpc, tuple(subnets), group
