"""Stack config: bad values fail at preview time with a message naming the config key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_harness import run_stack
from infra_manifests import manifests, pod_spec

from infra.config import GRACE_MARGIN_SECONDS, InClusterRedisConfig, parse_config
from infra.config_reader import InfraConfigError
from service.catalog.queues import CATALOG, Autoscaling

BASE: dict[str, Any] = {
    "image": "registry.example/celery-fleet:1",
    "redis": {"mode": "in-cluster"},
    "autoscaler": {"mode": "hpa", "prometheusUrl": "http://prometheus:9090"},
}
ELASTICACHE = {
    "mode": "elasticache",
    "vpcId": "vpc-1",
    "subnetIds": ["subnet-1", "subnet-2"],
    "nodeSecurityGroupId": "sg-1",
    "multiAz": True,
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_defaults_come_from_the_catalog() -> None:
    cfg = parse_config(BASE, "dev")
    assert [q.name for q in cfg.queues] == list(CATALOG.names)
    for q in cfg.queues:
        assert q.min_replicas == q.spec.autoscaling.min_replicas
        assert q.max_replicas == q.spec.autoscaling.max_replicas
        assert q.termination_grace_seconds == q.spec.hard_time_limit + GRACE_MARGIN_SECONDS
        assert q.max_memory_per_child_kb >= 10_000
    assert isinstance(cfg.redis, InClusterRedisConfig)


def test_overrides_apply_per_queue() -> None:
    cfg = parse_config(
        with_(queues={"email": {"minReplicas": 3, "maxReplicas": 7, "backlogPerReplica": 9}}),
        "dev",
    )
    email = cfg.queue("email")
    assert (email.min_replicas, email.max_replicas, email.backlog_per_replica) == (3, 7, 9)
    # The autoscaler and the alert rules read one copy of the overridden values.
    assert email.autoscaling == email.spec.autoscaling == Autoscaling(3, 7, 9)
    assert cfg.catalog.get("email").autoscaling == email.autoscaling


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (with_(queues={"emails": {"maxReplicas": 2}}), "celery-fleet:queues.emails"),
        (
            with_(queues={"reports": {"minReplicas": 5, "maxReplicas": 3}}),
            "celery-fleet:queues.reports.minReplicas",
        ),
        ({k: v for k, v in BASE.items() if k != "image"}, "celery-fleet:image"),
        (with_(image=""), "celery-fleet:image"),
        (with_(redis={"mode": "memcached"}), "celery-fleet:redis.mode"),
        (with_(redis={}), "celery-fleet:redis.mode"),
        (
            with_(autoscaler={"mode": "vpa", "prometheusUrl": "http://p"}),
            "celery-fleet:autoscaler.mode",
        ),
        (with_(imagePullPolicy="Sometimes"), "celery-fleet:imagePullPolicy"),
        (with_(queues={"email": {"minReplicas": 0}}), "celery-fleet:queues.email.minReplicas"),
        (with_(queues={"email": {"maxReplica": 3}}), "celery-fleet:queues.email.maxReplica"),
        (with_(queues={"email": {"maxReplicas": "many"}}), "celery-fleet:queues.email.maxReplicas"),
        (with_(replicas=3), "celery-fleet:replicas"),
        (with_(redis={**ELASTICACHE, "vpcId": None}), "celery-fleet:redis.vpcId"),
        (with_(redis={**ELASTICACHE, "numCacheClusters": 1}), "celery-fleet:redis.multiAz"),
        (with_(features={"flowerIngress": True}), "celery-fleet:flower.ingressHost"),
        (
            with_(queues={"heavy_processing": {"resources": {"memoryLimit": "12Mi"}}}),
            "celery-fleet:queues.heavy_processing.resources",
        ),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(InfraConfigError, match=key.replace(".", r"\.")):
        parse_config(raw, "dev")


def test_keda_may_scale_to_zero_but_hpa_may_not() -> None:
    keda = with_(
        autoscaler={"mode": "keda", "prometheusUrl": "http://p:9090"},
        queues={"email": {"minReplicas": 0}},
    )
    assert parse_config(keda, "prod").queue("email").min_replicas == 0


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--set", 'queues={"nope": {"maxReplicas": 2}}'], "celery-fleet:queues.nope"),
        (["--set", 'queues={"email": {"minReplicas": 9, "maxReplicas": 2}}'],
         "celery-fleet:queues.email.minReplicas"),
        (["--unset", "image"], "celery-fleet:image"),
        (["--set", 'autoscaler={"mode": "magic", "prometheusUrl": "http://p"}'],
         "celery-fleet:autoscaler.mode"),
        (["--set", 'smtpPassword="hunter2"'], "celery-fleet:smtpPassword"),
    ],
)  # fmt: skip
def test_the_program_fails_at_preview_naming_the_key(args: list[str], key: str) -> None:
    # Given Pulumi.dev.yaml with one bad edit, When the program runs, Then it stops early
    proc = run_stack("dev", *args)
    assert proc.returncode != 0
    assert "InfraConfigError" in proc.stderr and key in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout == ""


def test_secrets_set_with_secret_reach_only_secret_objects() -> None:
    proc = run_stack("dev", "--secret", "smtpPassword=s3cr3t-smtp")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    for r in data["resources"]:
        text = json.dumps(r["inputs"])
        if "s3cr3t-smtp" in text:
            assert r["type"] == "kubernetes:core/v1:Secret"
            assert "4dabf18193072939515e22adb298388d" in text  # wrapped as a Pulumi secret
    assert "s3cr3t-smtp" not in json.dumps(data["exports"])
    workers = [r for r in data["resources"] if r["type"] == "kubernetes:apps/v1:Deployment"]
    env = workers[0]["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"]
    ref = {"secretKeyRef": {"name": "celery-fleet-app", "key": "smtp-password"}}
    assert {"name": "FLEET_SMTP_PASSWORD", "valueFrom": ref} in env


DIGEST = "sha256:" + "0123456789abcdef" * 4
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/celery-fleet"


@pytest.mark.parametrize("image", [f"{ECR}@{DIGEST}", f"{ECR}:0a1b2c3@{DIGEST}", f"{ECR}:1.2"])
def test_image_by_tag_or_by_digest_is_accepted(image: str) -> None:
    assert parse_config(with_(image=image), "dev").image == image


@pytest.mark.parametrize(
    "image",
    [
        f"{ECR}@",  # CI's digest output was empty
        f"{ECR}@sha256:0123abc",  # truncated
        f"{ECR}@sha512:{'0' * 64}",
        f"{ECR}@{DIGEST.upper()}",
        f"{ECR}@{DIGEST}@{DIGEST}",
    ],
)
def test_a_malformed_digest_reference_is_refused_naming_the_key(image: str) -> None:
    with pytest.raises(InfraConfigError, match="celery-fleet:image"):
        parse_config(with_(image=image), "dev")


def test_the_digest_ci_passes_reaches_every_fleet_pod_and_the_image_export() -> None:
    # Given the config deploy.yml sets (`celery-fleet:image` = repo@sha256:...)
    image = f"{ECR}@{DIGEST}"
    proc = run_stack("dev", "--set", f"image={json.dumps(image)}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    # Then every container that runs `fleet` uses exactly that reference, and it is exported
    fleet_images = {
        c["image"]
        for m in manifests(data["resources"])
        if m["kind"] in ("Deployment", "StatefulSet")
        for c in pod_spec(m)["containers"]
        if c.get("command") == ["fleet"]
    }
    assert fleet_images == {image}
    assert data["exports"]["image"] == {"value": image, "secret": False}


def test_an_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(InfraConfigError) as top:
        parse_config(with_(replicas=3), "dev")
    assert "unknown config key celery-fleet:replicas" in str(top.value)
    assert "queues" in str(top.value) and "autoscaler" in str(top.value)
    with pytest.raises(InfraConfigError) as nested:
        parse_config(with_(queues={"email": {"resources": {"memroy": "1Gi"}}}), "dev")
    message = str(nested.value)
    assert "celery-fleet:queues.email.resources.memroy" in message
    assert "cpu, cpuLimit, memory, memoryLimit" in message


def test_the_resolved_catalog_carries_the_stacks_autoscaling() -> None:
    # Given overrides of one queue, then the stack's catalog (what its rules are rendered
    # from) has them, and every other queue keeps the catalog's values
    cfg = parse_config(with_(queues={"email": {"maxReplicas": 7, "backlogPerReplica": 9}}), "dev")
    email = cfg.catalog.get("email")
    assert (email.autoscaling.max_replicas, email.autoscaling.backlog_per_replica) == (7, 9)
    assert email.task_patterns == CATALOG.get("email").task_patterns
    for name in CATALOG.names:
        if name != "email":
            assert cfg.catalog.get(name) == CATALOG.get(name)


def test_partial_resources_keep_the_other_defaults() -> None:
    cfg = parse_config(with_(queues={"reports": {"resources": {"cpu": "2"}}}), "dev")
    resources = cfg.queue("reports").resources
    assert resources.cpu_request == "2"
    assert resources.memory_limit == f"{(128 + 128 * 2) * 2}Mi"


@pytest.mark.parametrize("value", [True, "3", 2.5])
def test_replica_counts_must_be_integers(value: Any) -> None:
    with pytest.raises(InfraConfigError, match=r"celery-fleet:queues\.email\.maxReplicas"):
        parse_config(with_(queues={"email": {"maxReplicas": value}}), "dev")
