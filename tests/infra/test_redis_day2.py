"""ElastiCache day 2 (alarms, SNS, logs, windows, final snapshot, protect, KMS,
applyImmediately) and the `external` Redis mode, rendered under mocks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from infra_harness import ROOT, run_stack, stack_result
from infra_manifests import clean, is_secret_value

from infra.config import parse_config
from infra.config_reader import InfraConfigError

RG = "aws:elasticache/replicationGroup:ReplicationGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
KMS = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:oncall"


def prod_redis(**changes: Any) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    return {**doc["config"]["celery-fleet:redis"], **changes}


def render(*args: str) -> dict[str, Any]:
    proc = run_stack("prod", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def of_type(result: dict[str, Any], typ: str) -> list[dict[str, Any]]:
    return [dict(clean(r["inputs"])) for r in result["resources"] if r["type"] == typ]


def test_prod_alarms_every_node_on_memory_cpu_connections_evictions_and_lag() -> None:
    result = stack_result("prod")
    alarms = of_type(result, ALARM)
    nodes = prod_redis()["numCacheClusters"]
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for a in alarms:
        by_metric.setdefault(a["metricName"], []).append(a)
    # One per node, replication lag on the replicas only
    assert {m: len(v) for m, v in by_metric.items()} == {
        "DatabaseMemoryUsagePercentage": nodes,
        "EngineCPUUtilization": nodes,
        "CurrConnections": nodes,
        "Evictions": nodes,
        "ReplicationLag": nodes - 1,
    }
    memory = by_metric["DatabaseMemoryUsagePercentage"]
    assert all(a["threshold"] == 80 for a in memory)
    assert all(a["comparisonOperator"] == "GreaterThanThreshold" for a in memory)
    assert sorted(a["dimensions"]["CacheClusterId"][-4:] for a in memory) == [
        f"-{i:03d}" for i in range(1, nodes + 1)
    ]
    assert {a["dimensions"]["CacheClusterId"][-4:] for a in by_metric["ReplicationLag"]} == {
        "-002",
        "-003",
    }
    assert all(a["threshold"] == 0 for a in by_metric["Evictions"])
    # prod creates its SNS topic and every alarm notifies it, firing and recovering
    (topic,) = of_type(result, "aws:sns/topic:Topic")
    assert topic["name"] == "celery-fleet-prod-redis-alarms"
    assert all(len(a["alarmActions"]) == 1 and a["okActions"] == a["alarmActions"] for a in alarms)


def test_an_existing_topic_or_none() -> None:
    redis = prod_redis(alarms={"snsTopicArn": TOPIC})
    result = render("--set", f"redis={json.dumps(redis)}")
    assert of_type(result, "aws:sns/topic:Topic") == []
    assert all(a["alarmActions"] == [TOPIC] for a in of_type(result, ALARM))
    off = render("--set", f"redis={json.dumps(prod_redis(alarms={'enabled': False}))}")
    assert of_type(off, ALARM) == []


def test_logs_windows_snapshots_protect_kms_and_apply_immediately() -> None:
    result = stack_result("prod")
    (rg,) = of_type(result, RG)
    assert rg["maintenanceWindow"] == "sun:05:00-sun:06:00"
    assert rg["snapshotWindow"] == "03:00-04:00"
    assert rg["finalSnapshotIdentifier"] == "celery-fleet-prod-final"
    assert rg["applyImmediately"] is False
    assert {c["logType"] for c in rg["logDeliveryConfigurations"]} == {"slow-log", "engine-log"}
    assert all(c["destinationType"] == "cloudwatch-logs" for c in rg["logDeliveryConfigurations"])
    groups = of_type(result, "aws:cloudwatch/logGroup:LogGroup")
    assert {g["name"] for g in groups} == {
        "/celery-fleet/prod/redis/slow-log",
        "/celery-fleet/prod/redis/engine-log",
    }
    assert all(g["retentionInDays"] == 30 for g in groups)
    (opts,) = [o for o in result["options"] if o["type"] == RG]
    assert opts["protect"] is True
    # Changed by config
    redis = prod_redis(kmsKeyArn=KMS, applyImmediately=True, logDelivery=False, protect=False,
                       finalSnapshot=False)  # fmt: skip
    changed = render("--set", f"redis={json.dumps(redis)}")
    (rg2,) = of_type(changed, RG)
    assert rg2["kmsKeyId"] == KMS and rg2["applyImmediately"] is True
    assert "finalSnapshotIdentifier" not in rg2 and not rg2.get("logDeliveryConfigurations")
    (opts2,) = [o for o in changed["options"] if o["type"] == RG]
    assert opts2["protect"] is False


BASE: dict[str, Any] = {
    "image": "registry.example/celery-fleet:1",
    "autoscaler": {"mode": "hpa", "prometheusUrl": "http://prometheus:9090"},
}
EC = {"mode": "elasticache", "vpcId": "v", "subnetIds": ["s"], "nodeSecurityGroupId": "g"}


@pytest.mark.parametrize(
    ("redis", "key"),
    [
        ({**EC, "maintenanceWindow": "sunday 5am"}, "redis.maintenanceWindow"),
        ({**EC, "snapshotWindow": "05:30-06:30"}, "redis.snapshotWindow"),  # overlaps
        ({**EC, "snapshotWindow": "03:00-03:30"}, "redis.snapshotWindow"),  # < 60 min
        ({**EC, "logRetentionDays": 10}, "redis.logRetentionDays"),
        ({**EC, "kmsKeyArn": "my-key"}, "redis.kmsKeyArn"),
        ({**EC, "authTokenUpdateStrategy": "DELETE"}, "redis.authTokenUpdateStrategy"),
        ({**EC, "alarms": {"snsTopicArn": TOPIC, "createSnsTopic": True}},
         "redis.alarms.createSnsTopic"),
        ({**EC, "alarms": {"memoryPercent": 120}}, "redis.alarms.memoryPercent"),
        ({**EC, "alarms": {"memroyPercent": 70}}, "redis.alarms.memroyPercent"),
        ({"mode": "external"}, "redis.host"),
    ],
)  # fmt: skip
def test_bad_day2_config_names_the_key(redis: dict[str, Any], key: str) -> None:
    with pytest.raises(InfraConfigError, match=f"celery-fleet:{key}".replace(".", r"\.")):
        parse_config({**BASE, "redis": redis}, "prod")


def test_external_redis_stores_the_secret_url_and_creates_no_redis() -> None:
    url = "rediss://:pw-from-vault@redis.example.net:6380/0?ssl_cert_reqs=required"
    proc = run_stack(
        "dev",
        "--set",
        'redis={"mode": "external", "host": "redis.example.net"}',
        "--secret",
        f"brokerUrl={url}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    types = {r["type"] for r in result["resources"]}
    assert not any(t.startswith("aws:") for t in types)
    assert "kubernetes:apps/v1:StatefulSet" not in types
    (secret,) = [r for r in result["resources"] if r["type"] == "kubernetes:core/v1:Secret"
                 and r["inputs"]["metadata"]["name"] == "celery-fleet-broker"]  # fmt: skip
    assert is_secret_value(secret["inputs"]["stringData"])
    assert clean(secret["inputs"]["stringData"]) == {"broker-url": url}
    assert result["exports"]["redis_host"]["value"] == "redis.example.net"
    assert result["exports"]["broker_url"]["secret"] is True
    assert "pw-from-vault" not in json.dumps({k: v for k, v in result["exports"].items()
                                              if k != "broker_url"})  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs the broker URL"),
        (["--secret", "brokerUrl=http://redis:6379"], "must be a redis:// or rediss://"),
        (["--secret", "brokerUrl=rediss://:p@h:6379/0"], "ssl_cert_reqs=required"),
        (["--set", 'brokerUrl="redis://:p@h:6379/0"'], "must be a secret"),
    ],
)
def test_external_redis_refuses_a_missing_or_bad_url(args: list[str], message: str) -> None:
    proc = run_stack("dev", "--set", 'redis={"mode": "external", "host": "h"}', *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "p@h" not in proc.stderr.replace("brokerUrl=", "")
