"""The CI preview identity (infra/ci_identity.py) can read and nothing more: its IAM policy
holds only Describe/List/Get/Decrypt actions, only the stack's preview and drift Environments
can assume it, and its Kubernetes RBAC is get/list/watch, Secrets `get` in one namespace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from infra.ci_identity import (
    KUBERNETES_GROUP,
    PreviewIdentityArgs,
    cluster_rules,
    permissions_policy,
    trust_policy,
)

ARGS = PreviewIdentityArgs(
    stack="prod",
    repository="acme/celery-fleet",
    oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com",
    cluster_name="prod",
    cluster_arn="arn:aws:eks:eu-west-1:123456789012:cluster/prod",
    fleet_namespace="celery-fleet",
    kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/abc",
    state_bucket="acme-pulumi",
    state_prefix="celery-fleet",
)
READ_ONLY = re.compile(
    r"^(eks:DescribeCluster|elasticache:(Describe\*|ListTagsForResource)|ec2:Describe\w+"
    r"|kms:Decrypt|s3:(GetObject|ListBucket))$"
)


def actions(policy: dict[str, Any]) -> list[str]:
    return [a for s in policy["Statement"] for a in s["Action"]]


def test_the_role_can_only_read() -> None:
    granted = actions(permissions_policy(ARGS))
    assert granted and all(READ_ONLY.match(a) for a in granted), granted
    assert {"kms:Decrypt", "s3:GetObject", "eks:DescribeCluster"} <= set(granted)
    s3 = [s for s in permissions_policy(ARGS)["Statement"] if s["Action"] == ["s3:GetObject"]]
    assert s3[0]["Resource"] == "arn:aws:s3:::acme-pulumi/celery-fleet/*"


def test_the_read_only_check_would_catch_a_write_action() -> None:
    assert not READ_ONLY.match("s3:PutObject") and not READ_ONLY.match("kms:Encrypt")
    assert not READ_ONLY.match("elasticache:ModifyReplicationGroup")


def test_only_the_stacks_preview_and_drift_environments_assume_it() -> None:
    (statement,) = trust_policy(ARGS)["Statement"]
    condition = statement["Condition"]
    assert set(condition) == {"StringEquals"}  # no StringLike wildcard on the subject
    assert condition["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": [
            "repo:acme/celery-fleet:environment:preview-prod",
            "repo:acme/celery-fleet:environment:drift-prod",
        ],
    }


def test_without_an_s3_backend_or_kms_key_no_state_or_key_access() -> None:
    bare = PreviewIdentityArgs(**{**ARGS.__dict__, "kms_key_arn": None, "state_bucket": None})
    assert not {a for a in actions(permissions_policy(bare)) if a.startswith(("s3:", "kms:"))}


def test_cluster_rbac_reads_and_never_secrets() -> None:
    rules = cluster_rules()
    assert all(r["verbs"] == ["get", "list", "watch"] for r in rules)
    assert not any("secrets" in list(r["resources"] or []) for r in rules)  # type: ignore[arg-type]


COMPONENT = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests/infra"]
import pulumi
from run_stack import Recorder
from infra.ci_identity import PreviewIdentity
from test_ci_identity import ARGS
recorder = Recorder()
pulumi.runtime.set_mocks(recorder, project="celery-fleet", stack="prod", preview=False)

@pulumi.runtime.test
def program():
    return PreviewIdentity("preview-prod", ARGS).role_arn

program()
json.dump(recorder.resources, sys.stdout)
"""


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    from infra_harness import ROOT

    done = subprocess.run(
        [sys.executable, "-c", COMPONENT, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout))


def test_the_component_creates_the_role_access_entry_and_rbac(
    resources: list[dict[str, Any]],
) -> None:
    by_type = {r["type"]: r["inputs"] for r in resources}
    role = json.loads(by_type["aws:iam/role:Role"]["assumeRolePolicy"])
    assert role == trust_policy(ARGS)
    policy = json.loads(by_type["aws:iam/rolePolicy:RolePolicy"]["policy"])
    assert all(READ_ONLY.match(a) for a in actions(policy))
    assert by_type["aws:eks/accessEntry:AccessEntry"]["kubernetesGroups"] == [KUBERNETES_GROUP]
    secret_role = by_type["kubernetes:rbac.authorization.k8s.io/v1:Role"]
    assert secret_role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    assert secret_role["metadata"]["namespace"] == "celery-fleet"
    cluster_role = by_type["kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"]
    assert {v for r in cluster_role["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    bindings = [t for t in by_type if t.endswith(("v1:ClusterRoleBinding", "v1:RoleBinding"))]
    assert len(bindings) == 2
