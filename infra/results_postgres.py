"""RDS PostgreSQL for task results (production): storage encrypted, never publicly
accessible, deletion protection and a final snapshot, automated backups, optional Multi-AZ,
TLS forced by a parameter group, a security group that admits 5432 from the Kubernetes nodes'
security group only, a generated master password kept as a Pulumi secret, and CloudWatch
alarms on CPU, free storage, free memory and connections.

The fleet connects as the master user, which owns the database: Celery creates its tables
with it the first time a worker stores a result (`CREATE TABLE` if missing, then plain DML).
Arguments are pulumi_aws's `rds.Instance`, `rds.SubnetGroup`, `rds.ParameterGroup`,
`ec2.SecurityGroup` and `cloudwatch.MetricAlarm` (checked against the installed package)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.cloudwatch_alarms import AlarmSpec, AlarmWindow, metric_alarm
from infra.names import PART_OF
from infra.results_config import PostgresResults, rds_network
from infra.results_names import POSTGRES_PORT, postgres_url

GIB = 1024**3


def _alarms(
    resource_name: str,
    cfg: PostgresResults,
    instance: aws.rds.Instance,
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> None:
    """Like the broker's: a sustained problem, not a blip (3 x 5 minutes)."""
    what = "celery-fleet results database:"
    below = "LessThanThreshold"
    specs = [
        AlarmSpec("cpu", "CPUUtilization", 80, "Average", f"{what} CPU above 80%"),
        AlarmSpec(
            "storage",
            "FreeStorageSpace",
            cfg.free_storage_alarm_gb * GIB,
            "Average",
            f"{what} free storage below {cfg.free_storage_alarm_gb} GiB",
            comparison=below,
            # No datapoint from the storage metric is itself a problem.
            treat_missing_data="breaching",
        ),
        AlarmSpec(
            "memory",
            "FreeableMemory",
            128 * 1024**2,
            "Average",
            f"{what} free memory < 128 MiB",
            comparison=below,
        ),
        AlarmSpec(
            "connections",
            "DatabaseConnections",
            cfg.max_connections_alarm,
            "Average",
            f"{what} more than {cfg.max_connections_alarm} connections",
        ),
    ]
    for spec in specs:
        metric_alarm(
            f"{resource_name}-{spec.key}",
            spec,
            namespace="AWS/RDS",
            dimensions={"DBInstanceIdentifier": instance.identifier},
            window=AlarmWindow(period=300, evaluation_periods=3),
            actions=cfg.alarm_actions,
            tags=tags,
            opts=child,
        )


class RdsPostgres(pulumi.ComponentResource):
    """Outputs: `url` (secret, Celery's form) and `host` (the instance's address)."""

    url: pulumi.Output[str]
    host: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: PostgresResults,
        redis: Any,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:aws:RdsPostgres", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"app.kubernetes.io/part-of": PART_OF, "stack": stack}
        vpc_id, subnet_ids, node_group = rds_network(cfg, redis)
        # RDS forbids / @ " and spaces in master passwords; alphanumerics keep the URL plain.
        password = random.RandomPassword(
            f"{resource_name}-password", length=40, special=False, opts=child
        )
        sg = aws.ec2.SecurityGroup(
            f"{resource_name}-sg",
            description="celery-fleet results: PostgreSQL from the Kubernetes nodes only",
            vpc_id=vpc_id,
            ingress=[
                {
                    "description": "PostgreSQL from the cluster node security group",
                    "protocol": "tcp",
                    "from_port": POSTGRES_PORT,
                    "to_port": POSTGRES_PORT,
                    "security_groups": [node_group],
                }
            ],
            tags=tags,
            opts=child,
        )
        subnets = aws.rds.SubnetGroup(
            f"{resource_name}-subnets",
            description="celery-fleet results database subnets",
            subnet_ids=list(subnet_ids),
            tags=tags,
            opts=child,
        )
        params = aws.rds.ParameterGroup(
            f"{resource_name}-params",
            family=f"postgres{cfg.major_version}",
            description="celery-fleet results: TLS only",
            parameters=[{"name": "rds.force_ssl", "value": "1"}],
            tags=tags,
            opts=child,
        )
        instance = aws.rds.Instance(
            f"{resource_name}-db",
            engine="postgres",
            engine_version=cfg.engine_version,
            instance_class=cfg.instance_class,
            allocated_storage=cfg.allocated_storage_gb,
            max_allocated_storage=cfg.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=cfg.database,
            username=cfg.username,
            password=password.result,
            port=POSTGRES_PORT,
            db_subnet_group_name=subnets.name,
            parameter_group_name=params.name,
            vpc_security_group_ids=[sg.id],
            publicly_accessible=False,
            multi_az=cfg.multi_az,
            deletion_protection=cfg.deletion_protection,
            backup_retention_period=cfg.backup_retention_days,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"celery-fleet-results-{stack}-final",
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags,
            opts=child,
        )
        _alarms(resource_name, cfg, instance, tags, child)
        self.host = instance.address
        # TLS (the server forces it); the RDS CA bundle is not in the image, so the
        # certificate is not verified: the security group limits who can answer.
        self.url = pulumi.Output.secret(
            pulumi.Output.all(password.result, self.host).apply(
                lambda parts: postgres_url(
                    cfg.username, parts[0], parts[1], cfg.database, "sslmode=require"
                )
            )
        )
        self.register_outputs({"host": self.host, "url": self.url})
