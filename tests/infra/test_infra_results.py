"""`results.mode` in every stack: redis (nothing created), postgres in-cluster (dev),
postgres on RDS (prod), external (a Secret the operator made). Each renders under mocks,
passes the policy pack and strict Kubernetes schema checks, and every fleet pod reads
CELERY_RESULT_BACKEND from a Secret; the RDS instance is encrypted, private, protected and
alarmed. The policy pack rejects an unencrypted, public or unprotected production database."""

from __future__ import annotations

import functools
import json
from typing import Any

import kubernetes_validate
import pytest
from infra_harness import run_stack
from infra_manifests import by_name, clean, is_secret_value, manifests, pod_spec

from policy.checks import violations
from policy.database_checks import rds_encrypted_private_protected

NETWORK = {
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
    "nodeSecurityGroupId": "sg-0a1b2c3d4e5f60719",
}
MODES: dict[str, dict[str, Any]] = {
    "redis": {"mode": "redis"},
    "in-cluster": {"mode": "postgres"},
    "rds": {"mode": "postgres", "provider": "rds", "multiAz": True, **NETWORK},
    "external": {"mode": "external", "secretName": "audit-results", "secretKey": "dsn"},
}
RDS = "aws:rds/instance:Instance"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
APP_WORKLOADS = ("Deployment",)


@functools.cache
def render(stack: str, mode: str) -> dict[str, Any]:
    proc = run_stack(stack, "--set", f"results={json.dumps(MODES[mode])}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _result_env(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for c in pod_spec(manifest)["containers"]
        for e in c.get("env", [])
        if e["name"] == "CELERY_RESULT_BACKEND"
    ]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_mode_renders_and_passes_the_pack_and_the_schema(stack: str, mode: str) -> None:
    result = render(stack, mode)
    failures = {}
    for r in result["resources"]:
        found = violations(r["type"], clean(r["inputs"]))
        if found:
            failures[f"{r['type']}::{r['name']}"] = found
    assert failures == {}
    schema_failures = []
    for manifest in manifests(result["resources"]):
        if manifest["kind"] in {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ScaledObject"}:
            continue
        try:
            kubernetes_validate.validate(manifest, "1.34", strict=True)
        except kubernetes_validate.ValidationError as exc:
            schema_failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc}")
    assert not schema_failures
    assert result["exports"]["results_mode"]["value"] == MODES[mode]["mode"]


@pytest.mark.parametrize("mode", list(MODES))
def test_every_fleet_pod_reads_the_result_backend_from_a_secret(mode: str) -> None:
    resources = render("dev", mode)["resources"]
    deployments = manifests(resources, "Deployment")
    assert deployments
    expected = {
        "redis": None,
        "in-cluster": {"name": "celery-fleet-results", "key": "url"},
        "rds": {"name": "celery-fleet-results", "key": "url"},
        "external": {"name": "audit-results", "key": "dsn"},
    }[mode]
    for deployment in deployments:
        env = _result_env(deployment)
        if expected is None:
            assert env == [], deployment["metadata"]["name"]  # falls back to the broker URL
        else:
            assert env == [
                {"name": "CELERY_RESULT_BACKEND", "valueFrom": {"secretKeyRef": expected}}
            ], deployment["metadata"]["name"]


def test_redis_and_external_modes_create_no_database() -> None:
    for mode in ("redis", "external"):
        resources = render("prod", mode)["resources"]
        assert not [r for r in resources if r["type"].startswith("aws:rds")]
        assert "celery-fleet-results" not in by_name(resources, "Secret")
        assert "celery-fleet-postgres" not in by_name(resources, "StatefulSet")


def test_in_cluster_postgres_is_a_locked_down_statefulset_with_a_secret_url() -> None:
    result = render("dev", "in-cluster")
    resources = result["resources"]
    postgres = by_name(resources, "StatefulSet")["celery-fleet-postgres"]
    (container,) = pod_spec(postgres)["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    # The bootstrap superuser and the fleet's own role, each with its own generated password
    assert env["POSTGRES_USER"]["value"] == "postgres"
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "celery-fleet-postgres",
        "key": "superuser-password",
    }
    assert env["FLEET_DB_USER"]["value"] == "fleet"
    assert env["FLEET_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "celery-fleet-postgres",
        "key": "password",
    }
    # created by the init script on the first start: LOGIN only, owner of its database
    init = by_name(resources, "ConfigMap")["celery-fleet-postgres-init"]
    (script,) = init["data"].values()
    assert "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in script
    assert 'OWNER TO :"role"' in script and "FLEET_DB_PASSWORD" in script
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/docker-entrypoint-initdb.d"]["readOnly"] is True
    passwords = next(
        r
        for r in resources
        if r["name"] == "results-postgres-password" and r["type"].endswith("Secret")
    )
    assert is_secret_value(passwords["inputs"]["stringData"])
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    policy = by_name(resources, "NetworkPolicy")["celery-fleet-postgres"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    # The URL Secret holds Celery's form, as a Pulumi secret
    raw = next(r for r in resources if r["name"] == "results-url")
    assert is_secret_value(raw["inputs"]["stringData"])
    url = clean(raw["inputs"]["stringData"])["url"]
    assert url.startswith("db+postgresql+psycopg://fleet:")
    assert url.endswith("@celery-fleet-postgres.celery-fleet.svc.cluster.local:5432/celery_results")


def test_rds_is_encrypted_private_protected_multi_az_and_alarmed() -> None:
    result = render("prod", "rds")
    resources = result["resources"]
    (db,) = [clean(r["inputs"]) for r in resources if r["type"] == RDS]
    assert db["engine"] == "postgres" and db["storageEncrypted"] is True
    assert db["publiclyAccessible"] is False and db["deletionProtection"] is True
    assert db["multiAz"] is True and db["skipFinalSnapshot"] is False
    assert db["backupRetentionPeriod"] >= 1
    (raw_db,) = [r for r in resources if r["type"] == RDS]
    assert is_secret_value(raw_db["inputs"]["password"])  # generated, kept as a secret
    (group,) = [
        clean(r["inputs"])
        for r in resources
        if r["type"] == "aws:ec2/securityGroup:SecurityGroup" and r["name"] == "results-rds-sg"
    ]
    (rule,) = group["ingress"]
    assert rule["securityGroups"] == [NETWORK["nodeSecurityGroupId"]]
    assert rule["fromPort"] == rule["toPort"] == 5432 and "cidrBlocks" not in rule
    alarms = {clean(r["inputs"])["metricName"] for r in resources if r["type"] == ALARM}
    assert {"CPUUtilization", "FreeStorageSpace", "FreeableMemory", "DatabaseConnections"} <= (
        alarms
    )
    url = clean(next(r for r in resources if r["name"] == "results-url")["inputs"]["stringData"])
    assert url["url"].endswith("rds.amazonaws.com:5432/celery_results?sslmode=require")
    assert result["exports"]["results_host"]["value"].endswith("rds.amazonaws.com")


def test_rds_takes_the_network_of_the_elasticache_broker() -> None:
    proc = run_stack("prod", "--set", 'results={"mode": "postgres", "provider": "rds"}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    db = next(r for r in json.loads(proc.stdout)["resources"] if r["type"] == RDS)
    assert clean(db["inputs"])["multiAz"] is False  # the option's default


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ({"mode": "postgres", "provider": "rds"}, "celery-fleet:results.provider: rds needs"),
        ({"mode": "sqlite"}, "celery-fleet:results"),
        ({"mode": "external"}, "secretName"),
        ({"mode": "postgres", "allocatedStorageGb": 10}, "allocatedStorageGb"),
        ({"mode": "postgres", "username": "postgres"}, "username: postgres is the in-cluster"),
    ],
)
def test_bad_results_config_fails_the_preview_naming_the_key(
    results: dict[str, Any], expected: str
) -> None:
    proc = run_stack("dev", "--set", f"results={json.dumps(results)}")
    assert proc.returncode != 0
    assert expected in proc.stderr


GOOD_DB = {"storageEncrypted": True, "publiclyAccessible": False, "deletionProtection": True,
           "skipFinalSnapshot": False, "tags": {"stack": "prod"}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"storageEncrypted": False}, "storageEncrypted"),
        ({"publiclyAccessible": True}, "publiclyAccessible"),
        ({"deletionProtection": False}, "deletionProtection"),
        ({"skipFinalSnapshot": True}, "final snapshot"),
    ],
)
def test_the_pack_guards_a_production_database(change: dict[str, Any], expected: str) -> None:
    assert rds_encrypted_private_protected(RDS, GOOD_DB) == []
    found = rds_encrypted_private_protected(RDS, {**GOOD_DB, **change})
    assert len(found) == 1 and expected in found[0]
    assert "rds-encrypted-private-protected" in violations(RDS, {**GOOD_DB, **change})


def test_a_dev_database_may_be_deleted_but_never_public_or_unencrypted() -> None:
    dev = {**GOOD_DB, "tags": {"stack": "dev"}, "deletionProtection": False}
    assert rds_encrypted_private_protected(RDS, dev) == []
    assert rds_encrypted_private_protected(RDS, {**dev, "publiclyAccessible": True})
    assert rds_encrypted_private_protected(
        "aws:rds/cluster:Cluster", {"storageEncrypted": False, "tags": {"stack": "dev"}}
    )
