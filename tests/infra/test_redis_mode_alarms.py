"""The broker's CloudWatch alarms in `redis.mode: cluster` (every node of every shard, as in
elasticache mode) and `redis.mode: serverless` (the cache against its usage limits), rendered
under mocks on prod. Every expected threshold is computed from the stack's parsed config (the
same `redis` value the render got), never written into the test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_harness import run_stack
from infra_manifests import clean

from infra.config_reader import validated
from infra.redis_cluster_config import ElastiCacheClusterConfig, ElastiCacheServerlessConfig

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:oncall"
NETWORK = {
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
    "nodeSecurityGroupId": "sg-0a1b2c3d4e5f60719",
}
CLUSTER = {
    "mode": "cluster",
    **NETWORK,
    "shards": 3,
    "replicasPerShard": 2,
    "alarms": {"createSnsTopic": True, "memoryPercent": 70, "connections": 900},
}
SERVERLESS = {
    "mode": "serverless",
    **NETWORK,
    "maxDataStorageGb": 40,
    "maxEcpuPerSecond": 20000,
    "alarms": {"snsTopicArn": TOPIC, "storagePercent": 75, "evaluationMinutes": 3},
}
# The mocks answer a resource's id with "<resource name>-id" (tests/infra/run_stack.py).
GROUP_ID = "redis-rg-id"


def render(redis: dict[str, Any]) -> dict[str, Any]:
    proc = run_stack("prod", "--set", f"redis={json.dumps(redis)}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def alarms_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(clean(r["inputs"])) for r in result["resources"] if r["type"] == ALARM]


def by_metric(alarms: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        out.setdefault(alarm["metricName"], []).append(alarm)
    return out


def config_of(redis: dict[str, Any]) -> Any:
    """The `redis` value as the program parses it (defaults filled in)."""
    kind = ElastiCacheClusterConfig if redis["mode"] == "cluster" else ElastiCacheServerlessConfig
    return validated(kind, redis, ("redis",))


def test_cluster_mode_alarms_every_node_of_every_shard() -> None:
    cfg = config_of(CLUSTER)
    assert isinstance(cfg, ElastiCacheClusterConfig)
    alarms = by_metric(alarms_of(render(CLUSTER)))
    nodes = {
        f"{GROUP_ID}-{shard:04d}-{node:03d}"
        for shard in range(1, cfg.shards + 1)
        for node in range(1, cfg.replicas_per_shard + 2)
    }
    replicas = {n for n in nodes if not n.endswith("-001")}
    thresholds = {
        "DatabaseMemoryUsagePercentage": cfg.alarms.memory_percent,
        "EngineCPUUtilization": cfg.alarms.engine_cpu_percent,
        "CurrConnections": cfg.alarms.connections,
        "Evictions": 0,
    }
    assert set(alarms) == {*thresholds, "ReplicationLag"}
    for metric, threshold in thresholds.items():
        # one alarm per node, on the node's CacheClusterId
        assert {a["dimensions"]["CacheClusterId"] for a in alarms[metric]} == nodes, metric
        assert len(alarms[metric]) == len(nodes)
        assert all(a["threshold"] == threshold for a in alarms[metric]), metric
    lag = alarms["ReplicationLag"]
    assert {a["dimensions"]["CacheClusterId"] for a in lag} == replicas
    assert len(lag) == len(replicas)
    assert all(a["threshold"] == cfg.alarms.replication_lag_seconds for a in lag)
    minutes = cfg.alarms.evaluation_minutes
    every = [a for group in alarms.values() for a in group]
    for a in every:
        assert a["namespace"] == "AWS/ElastiCache" and a["period"] == 60
        assert a["evaluationPeriods"] == minutes == a["datapointsToAlarm"]
        assert a["comparisonOperator"] == "GreaterThanThreshold"
        assert a["name"].startswith("celery-fleet-prod-redis-")
        assert a["name"].endswith(a["dimensions"]["CacheClusterId"])
        assert len(a["alarmActions"]) == 1 and a["okActions"] == a["alarmActions"]


def test_cluster_mode_creates_the_same_topic_as_elasticache_mode() -> None:
    result = render(CLUSTER)
    topics = [clean(r["inputs"]) for r in result["resources"] if r["type"] == "aws:sns/topic:Topic"]
    assert [t["name"] for t in topics] == ["celery-fleet-prod-redis-alarms"]


def test_serverless_alarms_against_the_usage_limits() -> None:
    cfg = config_of(SERVERLESS)
    assert isinstance(cfg, ElastiCacheServerlessConfig)
    result = render(SERVERLESS)
    (cache,) = [r for r in result["resources"] if r["type"].endswith("ServerlessCache")]
    alarms = by_metric(alarms_of(result))
    limits = cache["inputs"]["cacheUsageLimits"]
    expected = {
        # Maximum bytes stored vs the storage limit (GB as 10^9 bytes)
        "BytesUsedForCache": ("Maximum", limits["dataStorage"]["maximum"] * 10**9
                              * cfg.alarms.storage_percent / 100),
        # ECPUs summed per minute vs the per-second limit
        "ElastiCacheProcessingUnits": ("Sum", limits["ecpuPerSeconds"][0]["maximum"] * 60
                                       * cfg.alarms.ecpu_percent / 100),
        "ThrottledCmds": ("Sum", 0),
        "CurrConnections": ("Maximum", cfg.alarms.connections),
        "Evictions": ("Sum", 0),
    }  # fmt: skip
    assert limits["dataStorage"]["maximum"] == cfg.max_data_storage_gb
    assert {m: len(a) for m, a in alarms.items()} == dict.fromkeys(expected, 1)
    for metric, (statistic, threshold) in expected.items():
        (alarm,) = alarms[metric]
        assert (alarm["statistic"], alarm["threshold"]) == (statistic, threshold), metric
        # AWS publishes serverless metrics under `clusterId` = the cache's name only
        assert alarm["dimensions"] == {"clusterId": cache["inputs"]["name"]}
        assert alarm["namespace"] == "AWS/ElastiCache" and alarm["period"] == 60
        assert alarm["evaluationPeriods"] == cfg.alarms.evaluation_minutes
        assert alarm["alarmActions"] == [TOPIC] == alarm["okActions"]
    # An existing topic: none created
    assert not [r for r in result["resources"] if r["type"] == "aws:sns/topic:Topic"]


@pytest.mark.parametrize("redis", [CLUSTER, SERVERLESS], ids=["cluster", "serverless"])
def test_alarms_can_be_turned_off(redis: dict[str, Any]) -> None:
    assert alarms_of(render({**redis, "alarms": {"enabled": False}})) == []


@pytest.mark.parametrize(
    ("redis", "key"),
    [
        ({**SERVERLESS, "alarms": {"memoryPercent": 80}}, "redis.alarms.memoryPercent"),
        ({**SERVERLESS, "alarms": {"ecpuPercent": 120}}, "redis.alarms.ecpuPercent"),
        ({**CLUSTER, "alarms": {"storagePercent": 80}}, "redis.alarms.storagePercent"),
        ({**CLUSTER, "alarms": {"snsTopicArn": TOPIC, "createSnsTopic": True}},
         "redis.alarms.createSnsTopic"),
    ],
)  # fmt: skip
def test_bad_alarm_keys_are_refused_naming_the_key(redis: dict[str, Any], key: str) -> None:
    proc = run_stack("prod", "--set", f"redis={json.dumps(redis)}")
    assert proc.returncode != 0
    assert key in proc.stderr
