"""The read-only identity of CI's previews and drift checks for one stack: an IAM role that
only GitHub's OIDC tokens of the stack's `preview-<stack>` and `drift-<stack>` Environments can
assume, with read access and nothing else (the cluster's description, the state bucket,
kms:Decrypt for the stack's secrets, Describe on what the stack manages), an EKS access entry
putting it in the `celery-fleet-preview` Kubernetes group, and that group's RBAC: get/list/watch
on the kinds the stack manages, and `get` (no list) on Secrets in the fleet's namespace only.

Not part of the app stack's program on purpose: whoever can create IAM roles can escalate, so
the deploy role must not hold that right. Apply it from the account's bootstrap program (the one
that creates the deploy roles and the GitHub OIDC provider): `PreviewIdentity(...)` per stack.
pulumi-kubernetes v4 computes previews from inputs (no server-side dry-run writes), so read
access is enough for `pulumi preview`, `pulumi stack output image` and
`pulumi refresh --preview-only`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

OIDC_HOST = "token.actions.githubusercontent.com"
KUBERNETES_GROUP = "celery-fleet-preview"
READ_VERBS = ["get", "list", "watch"]
# API group -> the kinds of it the stack creates (infra/*.py), read for refresh and preview.
MANAGED_KINDS: dict[str, list[str]] = {
    "": [
        "namespaces",
        "services",
        "configmaps",
        "serviceaccounts",
        "persistentvolumeclaims",
    ],
    "apps": ["deployments", "statefulsets"],
    "policy": ["poddisruptionbudgets"],
    "autoscaling": ["horizontalpodautoscalers"],
    "networking.k8s.io": ["networkpolicies", "ingresses"],
    "keda.sh": ["scaledobjects"],
    "monitoring.coreos.com": ["podmonitors", "servicemonitors", "prometheusrules"],
}
# Describe/List/Get only: what refreshing ElastiCache, its security group and subnet group reads.
AWS_READ_ACTIONS = [
    "elasticache:Describe*",
    "elasticache:ListTagsForResource",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSecurityGroupRules",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


@dataclass(frozen=True)
class PreviewIdentityArgs:
    stack: str
    repository: str  # owner/name on GitHub
    oidc_provider_arn: str  # the account's token.actions.githubusercontent.com provider
    cluster_name: str
    cluster_arn: str
    fleet_namespace: str
    kms_key_arn: str | None = None  # the stack's awskms:// secrets provider, if any
    state_bucket: str | None = None  # the s3:// backend's bucket, if any
    state_prefix: str = ""


def trust_policy(args: PreviewIdentityArgs) -> dict[str, Any]:
    """Only this stack's preview and drift Environments of this repository, audience STS."""
    subjects = [
        f"repo:{args.repository}:environment:{kind}-{args.stack}" for kind in ("preview", "drift")
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": args.oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{OIDC_HOST}:sub": subjects,
                    }
                },
            }
        ],
    }


def permissions_policy(args: PreviewIdentityArgs) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": ["eks:DescribeCluster"], "Resource": args.cluster_arn},
        {"Effect": "Allow", "Action": AWS_READ_ACTIONS, "Resource": "*"},
    ]
    if args.kms_key_arn:
        statements.append(
            {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": args.kms_key_arn}
        )
    if args.state_bucket:
        prefix = args.state_prefix.strip("/")
        objects = f"{prefix}/*" if prefix else "*"
        bucket = f"arn:aws:s3:::{args.state_bucket}"
        statements += [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": bucket,
                "Condition": {"StringLike": {"s3:prefix": [objects]}} if prefix else {},
            },
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket}/{objects}"},
        ]
    for statement in statements:
        if not statement.get("Condition"):
            statement.pop("Condition", None)
    return {"Version": "2012-10-17", "Statement": statements}


def cluster_rules() -> list[k8s.rbac.v1.PolicyRuleArgsDict]:
    return [
        {"api_groups": [group], "resources": kinds, "verbs": READ_VERBS}
        for group, kinds in MANAGED_KINDS.items()
    ]


class PreviewIdentity(pulumi.ComponentResource):
    """Outputs: `role_arn` (the repository's/Environment's AWS_PREVIEW_ROLE_ARN)."""

    role_arn: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        args: PreviewIdentityArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:ci:PreviewIdentity", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{resource_name}-role",
            description=f"celery-fleet CI previews and drift checks of {args.stack}: read-only",
            assume_role_policy=json.dumps(trust_policy(args)),
            max_session_duration=3600,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{resource_name}-read",
            role=role.id,
            policy=json.dumps(permissions_policy(args)),
            opts=child,
        )
        aws.eks.AccessEntry(
            f"{resource_name}-access",
            cluster_name=args.cluster_name,
            principal_arn=role.arn,
            kubernetes_groups=[KUBERNETES_GROUP],
            type="STANDARD",
            opts=child,
        )
        group = "rbac.authorization.k8s.io"
        subjects: list[k8s.rbac.v1.SubjectArgsDict] = [
            {"kind": "Group", "name": KUBERNETES_GROUP, "api_group": group}
        ]
        reader = k8s.rbac.v1.ClusterRole(
            f"{resource_name}-reader",
            metadata={"name": KUBERNETES_GROUP},
            rules=cluster_rules(),
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{resource_name}-reader",
            metadata={"name": KUBERNETES_GROUP},
            role_ref={"api_group": group, "kind": "ClusterRole", "name": KUBERNETES_GROUP},
            subjects=subjects,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[reader]),
        )
        # Refresh reads the Secrets the stack manages by name: `get` in one namespace, no list.
        in_namespace: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": KUBERNETES_GROUP,
            "namespace": args.fleet_namespace,
        }
        secrets = k8s.rbac.v1.Role(
            f"{resource_name}-secrets",
            metadata=in_namespace,
            rules=[{"api_groups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{resource_name}-secrets",
            metadata=in_namespace,
            role_ref={"api_group": group, "kind": "Role", "name": KUBERNETES_GROUP},
            subjects=subjects,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secrets]),
        )
        self.role_arn = role.arn
        self.register_outputs({"role_arn": role.arn})
