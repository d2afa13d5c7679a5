"""What the ElastiCache components (replication group, cluster mode, serverless) share: the
credential, the security group that admits only the EKS nodes, the subnet group and the
`noeviction` parameter group of the node-based modes (serverless takes subnet ids and has no
parameter group), and the broker URL."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.config_redis import AwsNetwork
from infra.names import PART_OF

# Both node-based modes run engine 7 (the config keys only accept 7.x).
PARAMETER_FAMILY = "redis7"
NOEVICTION = ("maxmemory-policy", "noeviction")


def tags_for(stack: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": PART_OF, "stack": stack}


def credential(name: str, child: pulumi.ResourceOptions) -> random.RandomPassword:
    # ElastiCache AUTH tokens and RBAC passwords forbid @, " and /; alphanumerics also keep
    # the URL unescaped. 64 characters: within both limits (16..128).
    return random.RandomPassword(name, length=64, special=False, opts=child)


def node_only_security_group(
    name: str,
    cfg: AwsNetwork,
    ports: tuple[int, int],
    what: str,
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> aws.ec2.SecurityGroup:
    """Ingress on `ports` (first, last) from the Kubernetes node security group only."""
    low, high = ports
    span = str(low) if low == high else f"{low}-{high}"
    return aws.ec2.SecurityGroup(
        name,
        description=f"celery-fleet {what}: {span} from the Kubernetes nodes only",
        vpc_id=cfg.vpc_id,
        ingress=[
            {
                # AWS allows only a-zA-Z0-9 ._-:/()#,@[]+=&;{}!$* in rule descriptions.
                "description": "Redis from the cluster node security group",
                "protocol": "tcp",
                "from_port": low,
                "to_port": high,
                "security_groups": [cfg.node_security_group_id],
            }
        ],
        tags=tags,
        opts=child,
    )


def subnet_group(
    name: str, cfg: AwsNetwork, tags: dict[str, str], child: pulumi.ResourceOptions
) -> aws.elasticache.SubnetGroup:
    return aws.elasticache.SubnetGroup(
        name,
        description="celery-fleet Redis subnets",
        subnet_ids=list(cfg.subnet_ids),
        tags=tags,
        opts=child,
    )


def noeviction_parameter_group(
    name: str,
    description: str,
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
    extra: tuple[tuple[str, str], ...] = (),
) -> aws.elasticache.ParameterGroup:
    """`maxmemory-policy noeviction` (never drop a queued message: a full Redis refuses
    writes instead), after the `extra` parameters a mode needs (cluster-enabled)."""
    parameters: list[aws.elasticache.ParameterGroupParameterArgsDict] = [
        {"name": key, "value": value} for key, value in (*extra, NOEVICTION)
    ]
    return aws.elasticache.ParameterGroup(
        name,
        family=PARAMETER_FAMILY,
        description=description,
        parameters=parameters,
        tags=tags,
        opts=child,
    )


def cluster_broker_url(
    user: str, password: pulumi.Input[str], host: pulumi.Input[str], port: int
) -> pulumi.Output[str]:
    """`redisscluster://` (TLS, cluster): the certificate chains to Amazon's public CA, so
    verify it (Celery also refuses a rediss result backend without ssl_cert_reqs)."""
    return pulumi.Output.secret(
        pulumi.Output.concat(
            "redisscluster://", user, ":", password, "@", host, f":{port}/0?ssl_cert_reqs=required"
        )
    )
