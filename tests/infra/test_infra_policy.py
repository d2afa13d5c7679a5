"""The policy pack: pure checks on props dicts, violating and compliant resources, and every
resource the real dev/prod stacks create."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from infra_harness import stack_result
from infra_manifests import clean
from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

from policy.checks import (
    autoscaler_bounds,
    elasticache_encrypted_with_auth,
    no_plaintext_secrets_in_env,
    no_privileged_or_root,
    resources_set,
    violations,
)
from policy.pack import policies
from policy.prod import Context, prod_broker_durable, prod_images_pinned_by_digest

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
GOOD_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "img",
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "env": [
        {"name": "CELERY_BROKER_URL",
         "valueFrom": {"secretKeyRef": {"name": "s", "key": "broker-url"}}},
        {"name": "FLEET_LOG_LEVEL", "value": "INFO"},
        {"name": "REDIS_PASSWORD_FILE_REF", "value": "$(REDIS_PASSWORD)"},
    ],
}  # fmt: skip


def deployment(**container_changes: Any) -> dict[str, Any]:
    container = {**copy.deepcopy(GOOD_CONTAINER), **container_changes}
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def test_a_compliant_deployment_passes_every_check() -> None:
    assert violations(DEPLOYMENT, deployment()) == {}


@pytest.mark.parametrize(
    ("security_context", "expected"),
    [
        ({"privileged": True, "runAsNonRoot": True, "allowPrivilegeEscalation": False},
         "privileged"),
        ({"runAsUser": 0, "allowPrivilegeEscalation": False}, "runs as root"),
        ({"allowPrivilegeEscalation": False}, "may run as root"),
        ({"runAsNonRoot": True, "allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
        ({"runAsNonRoot": True}, "allowPrivilegeEscalation"),
        ({"runAsNonRoot": True, "allowPrivilegeEscalation": False,
          "capabilities": {"add": ["SYS_ADMIN"]}}, "SYS_ADMIN"),
    ],
)  # fmt: skip
def test_privileged_or_root_containers_are_rejected(
    security_context: dict[str, Any], expected: str
) -> None:
    found = no_privileged_or_root(DEPLOYMENT, deployment(securityContext=security_context))
    assert any(expected in message for message in found), found


def test_pod_level_non_root_counts_and_host_namespaces_do_not() -> None:
    props = deployment(securityContext={"allowPrivilegeEscalation": False})
    props["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True}
    assert no_privileged_or_root(DEPLOYMENT, props) == []
    props["spec"]["template"]["spec"]["hostNetwork"] = True
    assert no_privileged_or_root(DEPLOYMENT, props) == ["pod uses host hostNetwork"]


def test_cronjob_init_containers_are_checked_too() -> None:
    bad = {"name": "init", "image": "i", "securityContext": {"privileged": True}}
    props = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "initContainers": [bad], "containers": [GOOD_CONTAINER]}}}}}}  # fmt: skip
    found = violations("kubernetes:batch/v1:CronJob", props)
    assert "no-privileged-or-root-containers" in found and "container-resources-set" in found


def test_missing_resources_are_rejected() -> None:
    assert resources_set(DEPLOYMENT, deployment(resources={})) == [
        "container app lacks resources requests.cpu, requests.memory, limits.memory"
    ]
    only_requests = deployment(resources={"requests": {"cpu": "1", "memory": "1Gi"}})
    assert resources_set(DEPLOYMENT, only_requests) == [
        "container app lacks resources limits.memory"
    ]


@pytest.mark.parametrize(
    ("env", "ok"),
    [
        ({"name": "CELERY_BROKER_URL", "value": "redis://:hunter2@redis:6379/0"}, False),
        ({"name": "SOME_URL", "value": "rediss://user:pw@host:6379/0"}, False),
        ({"name": "DB_PASSWORD", "value": "hunter2"}, False),
        ({"name": "API_TOKEN", "value": "abc"}, False),
        ({"name": "FLEET_FLOWER_BASIC_AUTH", "value": "admin:pw"}, False),
        ({"name": "CELERY_BROKER_URL", "value": "redis://redis:6379/0"}, False),
        ({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, True),
        ({"name": "REDIS_HOST", "value": "redis.svc"}, True),
        ({"name": "HOMEPAGE", "value": "https://example.com/a:b"}, True),
        ({"name": "REDIS_PASSWORD_ARG", "value": "$(REDIS_PASSWORD)"}, True),
    ],
)
def test_plaintext_secrets_in_env(env: dict[str, Any], ok: bool) -> None:
    found = no_plaintext_secrets_in_env(DEPLOYMENT, deployment(env=[env]))
    assert (found == []) is ok, found


def test_hpa_bounds() -> None:
    hpa = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    assert autoscaler_bounds(hpa, {"spec": {"minReplicas": 2, "maxReplicas": 5}}) == []
    assert autoscaler_bounds(hpa, {"spec": {"minReplicas": 6, "maxReplicas": 5}}) == [
        "HorizontalPodAutoscaler min replicas (6) > max replicas (5)"
    ]
    assert autoscaler_bounds(hpa, {"spec": {"minReplicas": 0, "maxReplicas": 5}})
    so = "kubernetes:keda.sh/v1alpha1:ScaledObject"
    assert autoscaler_bounds(so, {"spec": {"minReplicaCount": 0, "maxReplicaCount": 3}}) == []
    assert autoscaler_bounds(so, {"spec": {"minReplicaCount": 4, "maxReplicaCount": 3}})


def test_elasticache_must_be_encrypted_with_auth() -> None:
    rg = "aws:elasticache/replicationGroup:ReplicationGroup"
    good = {"atRestEncryptionEnabled": True, "transitEncryptionEnabled": True,
            "authToken": "x" * 32, "clusterMode": "disabled",
            "securityGroupIds": ["sg-1"]}  # fmt: skip
    assert elasticache_encrypted_with_auth(rg, good) == []
    for key in ("atRestEncryptionEnabled", "transitEncryptionEnabled", "authToken",
                "securityGroupIds"):  # fmt: skip
        found = elasticache_encrypted_with_auth(rg, {k: v for k, v in good.items() if k != key})
        assert len(found) == 1 and key in found[0]
    assert elasticache_encrypted_with_auth(rg, {**good, "clusterMode": "enabled"})
    assert elasticache_encrypted_with_auth("aws:elasticache/cluster:Cluster", {"engine": "redis"})


def test_the_pack_reports_through_pulumi_policy() -> None:
    # Given the pack's policies and a privileged container with a plaintext password
    props = deployment(
        securityContext={"privileged": True},
        env=[{"name": "DB_PASSWORD", "value": "hunter2"}],
    )
    args = ResourceValidationArgs(DEPLOYMENT, props, "urn:x", "x", None, None)  # type: ignore[arg-type]
    reported: dict[str, list[str]] = {}
    # When each policy validates it
    for policy in policies():
        assert isinstance(policy, ResourceValidationPolicy)

        def report(message: str, urn: str | None, name: str = policy.name) -> None:
            reported.setdefault(name, []).append(message)

        policy.validate(args, report)
    # Then both are rejected
    assert "no-privileged-or-root-containers" in reported
    assert "no-plaintext-secrets-in-env" in reported


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_everything_the_stacks_create_passes_the_pack(stack: str) -> None:
    failures = {}
    result = stack_result(stack)
    protected = {(o["type"], o["name"]) for o in result["options"] if o["protect"]}
    for r in result["resources"]:
        context = Context(stack, protect=(r["type"], r["name"]) in protected)
        found = violations(r["type"], clean(r["inputs"]), context)
        if found:
            failures[f"{r['type']}::{r['name']}"] = found
    assert failures == {}


DIGEST = "sha256:" + "ab" * 32
RG = "aws:elasticache/replicationGroup:ReplicationGroup"


@pytest.mark.parametrize(
    ("image", "stack", "ok"),
    [
        (f"ghcr.io/x/app@{DIGEST}", "prod", True),
        (f"ghcr.io/x/app:1.2@{DIGEST}", "prod", True),
        ("ghcr.io/x/app:1.2", "prod", False),
        ("ghcr.io/x/app", "prod-eu", False),
        ("ghcr.io/x/app:latest", "dev", True),
        ("ghcr.io/x/app@sha256:abc", "prod", False),
    ],
)
def test_prod_images_are_pinned_by_digest(image: str, stack: str, ok: bool) -> None:
    props = deployment()
    props["spec"]["template"]["spec"]["containers"][0]["image"] = image
    found = prod_images_pinned_by_digest(DEPLOYMENT, props, Context(stack))
    assert (found == []) is ok, found


def test_the_prod_broker_is_durable_and_protected() -> None:
    good = {"finalSnapshotIdentifier": "x-final", "snapshotRetentionLimit": 7}
    assert prod_broker_durable(RG, good, Context("prod", protect=True)) == []
    assert prod_broker_durable(RG, {}, Context("dev")) == []
    found = prod_broker_durable(RG, {"snapshotRetentionLimit": 0}, Context("prod"))
    assert len(found) == 3
    assert any("protected" in m for m in found) and any("final" in m for m in found)
    # Serverless: no final snapshot to take (pulumi-aws has none); snapshots and protect
    sc = "aws:elasticache/serverlessCache:ServerlessCache"
    assert prod_broker_durable(sc, {"snapshotRetentionLimit": 1}, Context("prod", True)) == []
    found = prod_broker_durable(sc, {"snapshotRetentionLimit": 0}, Context("prod"))
    assert len(found) == 2 and all(m.startswith("ServerlessCache") for m in found)
    assert prod_broker_durable(sc, {}, Context("dev")) == []


def test_the_pack_reads_the_stack_from_the_urn_and_protect_from_the_options() -> None:
    class Opts:
        protect = False

    props = deployment()  # image "img": a tag, not a digest
    reported: list[str] = []
    for urn, expected in (
        ("urn:pulumi:prod::celery-fleet::t::x", 1),
        ("urn:pulumi:dev::p::t::x", 0),
    ):
        reported.clear()
        args = ResourceValidationArgs(DEPLOYMENT, props, urn, "x", Opts(), None)  # type: ignore[arg-type]
        for policy in policies():
            if policy.name == "prod-images-pinned-by-digest":
                assert isinstance(policy, ResourceValidationPolicy)
                policy.validate(args, lambda message, urn: reported.append(message))
        assert len(reported) == expected, (urn, reported)
